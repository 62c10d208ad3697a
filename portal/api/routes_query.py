"""Governed SQL, budgets and the token itself. Queries go through
``portal.services.query.run_query`` exactly as the SQL workspace and ``portal query`` do (one
``query.run`` audit event per attempt)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from portal.api.deps import caller, context, endpoint
from portal.api.errors import ERRORS
from portal.api.models import BudgetResponse, QueryRequest, QueryResponse, TokenView
from portal.errors import ConfigError, UserError
from portal.services import query as query_services
from portal.services import sandbox as sandbox_services
from portal.services import tokens
from portal.services.context import Context
from portal.services.tokens import Caller

router = APIRouter(prefix="/api/v1", responses=ERRORS)


@router.post("/query", response_model=QueryResponse, tags=["sql"], operation_id="run_query",
             summary="Run governed SQL on a dataset")
def run_query(body: QueryRequest, request: Request, ctx: Context = Depends(context),
              who: Caller = Depends(caller("query:run"))) -> dict[str, Any]:
    """One read-only statement against the team's governed extract of the dataset, under its
    grant's tier: the same checks, limits, disclosure control and audit as the SQL workspace."""
    tokens.check_scope(ctx, who, "query:run", body.dataset, endpoint(request))
    return query_services.run_query(ctx, who.principal, body.dataset, body.sql).to_json()


def _dataset_budget(ctx: Context, who: Caller, dataset_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"dataset": dataset_id, "tier": None, "queries": [],
                             "refusal": None, "privacy": None}
    try:
        budget = query_services.query_budget(ctx, who.principal, dataset_id)
    except (UserError, ConfigError) as exc:
        shown = exc if isinstance(exc, UserError) else ConfigError(code="service_unavailable",
                                                                   message="Not available now.")
        entry["refusal"] = {"code": shown.code, "message": shown.message}
        return entry
    entry["tier"] = budget["tier"]
    entry["privacy"] = budget.get("privacy")
    entry["queries"] = [w | {"remaining": max(0, w["limit"] - w["used"])}
                        for w in budget["windows"]]
    return entry


@router.get("/budget", response_model=BudgetResponse, tags=["sql", "validation"],
            operation_id="budget",
            summary="Query budgets and validation quotas")
def budget(ctx: Context = Depends(context),
           who: Caller = Depends(caller("budget:read"))) -> dict[str, Any]:
    """For each dataset the token names: the caller's query budget per minute and per day under
    the team's grant; for each validation task on those datasets: the team's quotas today."""
    datasets = [_dataset_budget(ctx, who, d) for d in who.token.datasets]
    tasks = [{"task": card.id, "dataset": card.dataset}
             | sandbox_services.quota_status(ctx, who.principal, card)
             for card in sandbox_services.tasks(ctx).values()
             if card.dataset in who.token.datasets]
    return {"datasets": datasets, "tasks": tasks}


@router.get("/token", response_model=TokenView, tags=["tokens"], operation_id="token",
            summary="The token this request carries")
def token(who: Caller = Depends(caller(None))) -> dict[str, Any]:
    """Its owner, team, scopes and expiry (useful to check a CI secret)."""
    return who.token.to_dict()
