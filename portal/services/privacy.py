"""The differential-privacy budget of DP tiers as the services see it: charging a query (or
replaying the identical one's answer) around its run, the budget a team has left, and what a
query will cost before it runs. The ledger itself is :mod:`portal.store.dp_ledger`; the design
is docs/decisions/0004-differential-privacy.md."""

from __future__ import annotations

from typing import Any

from portal.access.grants import Grant, check_active_grant
from portal.errors import PortalError
from portal.identity import Principal
from portal.policy.engine import ResolvedTier
from portal.policy.model import DpSettings
from portal.query import dp_noise, executor
from portal.query.executor import QueryResult
from portal.query.pool import WorkerPool
from portal.services.attempts import use_case
from portal.services.context import Context
from portal.services.policies import resolved_tier
from portal.store import dp_ledger


@use_case("query.preview", "dataset:{dataset_id}")
def preview_query(ctx: Context, principal: Principal, dataset_id: str,
                  sql: str) -> dict[str, Any]:
    """Before running ``sql``: in a DP tier, what it will cost and how precise each aggregate
    column will be (95% half-widths), and the budget left. Nothing runs and nothing is
    charged. ``{"dp": False}`` for tiers without a privacy budget. Raises as
    :func:`portal.services.query.run_query` does before execution (Denied, NotFound,
    Rejected)."""
    grant = check_active_grant(ctx.conn, principal, dataset_id)
    release, resolved = resolved_tier(ctx, dataset_id, grant.tier)
    dp_settings = resolved.settings.dp
    if dp_settings is None:
        return {"dp": False}
    plan = executor.prepare(sql, resolved, release).dp_plan
    shown: dict[str, Any] = {"dp": True, "cost_rho": 0.0, "cached": False, "columns": [],
                             "groups": None, "budget": privacy_budget(ctx, grant, dp_settings)}
    if plan is None:
        return shown  # no personal data: exact and free
    cached = dp_ledger.is_answered(ctx.conn, grant.team, grant.dataset_id,
                                   plan.canonical(resolved))
    shown.update(cost_rho=0.0 if cached else plan.rho, cached=cached,
                 columns=dp_noise.expected_half_widths(plan),
                 groups="public" if plan.public_keys is not None else "selected",
                 selection_threshold=plan.selection[1] if plan.selection else None)
    return shown


def run_dp(ctx: Context, grant: Grant, release: Any, resolved: ResolvedTier,
           prepared: executor.Prepared, pool: WorkerPool, query_id: str,
           state: dict[str, Any]) -> QueryResult:
    """Charge the team's privacy budget (or replay the identical query's answer), run, and
    keep the noisy answer for replay. Raises QuotaExceeded(``privacy_budget_exhausted``)."""
    plan = prepared.dp_plan
    dp_settings = resolved.settings.dp
    assert plan is not None and dp_settings is not None
    key = plan.canonical(resolved)
    state["dp"] = {"query_key": key, "cost_rho": plan.rho, "delta": plan.delta}
    charged = dp_ledger.charge(
        ctx.conn, team=grant.team, dataset_id=grant.dataset_id,
        release_version=release.version, tier=grant.tier, query_key=key, query_id=query_id,
        rho=plan.rho, delta=plan.delta, budget_rho=dp_settings.budget_rho,
        budget_delta=dp_settings.delta / 2)
    if charged.cached is not None:
        state["dp"].update(cost_rho=0.0, cached=True)
        result = executor.replay(charged.cached, query_id, resolved)
    else:
        try:
            result = executor.execute(ctx.settings, pool, release, resolved, prepared,
                                      query_id)
        except PortalError as exc:
            dp_ledger.record_failure(ctx.conn, grant.team, grant.dataset_id, key, exc.code)
            raise
        except BaseException:
            dp_ledger.record_failure(ctx.conn, grant.team, grant.dataset_id, key,
                                     "internal_error")
            raise
        dp_ledger.record_answer(ctx.conn, grant.team, grant.dataset_id, key,
                                executor.ledger_answer(result))
    result.privacy = dict(result.privacy or {}, **privacy_budget(ctx, grant, dp_settings))
    return result


def privacy_status(ctx: Context, principal: Principal, dataset_id: str) -> dict[str, Any] | None:
    """The team's privacy budget on ``dataset_id`` for display (see :func:`privacy_budget`),
    or None when there is no active grant or its tier keeps no budget. A plain read for page
    reruns: never raises, writes no audit event (like
    :func:`portal.services.query.can_download`)."""
    try:
        grant = check_active_grant(ctx.conn, principal, dataset_id)
        _, resolved = resolved_tier(ctx, dataset_id, grant.tier)
    except PortalError:
        return None
    dp_settings = resolved.settings.dp
    return privacy_budget(ctx, grant, dp_settings) if dp_settings else None


def privacy_budget(ctx: Context, grant: Grant, dp_settings: DpSettings) -> dict[str, Any]:
    """The team's privacy budget on the grant's dataset: spent and left (ρ), the queries left
    at this tier's cost, and the (ε, δ) statement of the whole budget and of what is spent."""
    used = dp_ledger.spent(ctx.conn, grant.team, grant.dataset_id)
    left = max(0.0, dp_settings.budget_rho - used.rho)
    return {
        "budget_rho": dp_settings.budget_rho, "spent_rho": round(used.rho, 12),
        "left_rho": round(left, 12), "rho_per_query": dp_settings.rho_per_query,
        "queries_left": int((left + 1e-12) // dp_settings.rho_per_query),
        "queries_charged": used.queries, "delta": dp_settings.delta,
        "epsilon_budget": dp_ledger.epsilon(dp_settings.budget_rho, dp_settings.delta / 2),
        "epsilon_spent": dp_ledger.epsilon(used.rho, dp_settings.delta / 2),
    }
