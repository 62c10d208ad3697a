"""Validation endpoints: tasks, submissions (and dry runs), run status and released reports.
Each calls the same ``portal.services.sandbox`` functions as the pages and the CLI."""

from __future__ import annotations

import threading
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile

from portal.api.deps import audited_lookup, caller, context, endpoint
from portal.api.errors import ERRORS
from portal.api.models import RunView, TaskView
from portal.errors import NotFound
from portal.services import sandbox as services
from portal.services import tokens
from portal.services.context import Context
from portal.services.policies import _fingerprint as card_files_fingerprint
from portal.services.tokens import Caller
from sandbox.tasks import TaskCard

router = APIRouter(prefix="/api/v1", tags=["validation"], responses=ERRORS)
RunId = Annotated[int, Path(ge=1, le=2**62, description="the run's id")]
RUN_LINKS = {name: {"operationId": operation, "parameters": {"run_id": "$response.body#/id"}}
             for name, operation in (("status", "run_status"), ("report", "run_report"))}


_cards_lock = threading.Lock()
_cards_cache: dict[FilePath, tuple[tuple, dict[str, TaskCard]]] = {}


def _cards(ctx: Context) -> dict[str, TaskCard]:
    """``services.tasks`` for the API's own scope checks, reused while the card files are
    unchanged (a status request would otherwise parse every card; the use cases it calls still
    load and check the cards themselves)."""
    folder = ctx.settings.tasks_dir or ctx.settings.project_root / "sandbox" / "tasks"
    stamp = card_files_fingerprint(folder)
    with _cards_lock:
        cached = _cards_cache.get(folder)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    cards = services.tasks(ctx)
    with _cards_lock:
        _cards_cache[folder] = (stamp, cards)
    return cards


def _card(ctx: Context, task_id: str) -> TaskCard:
    card = _cards(ctx).get(task_id)
    if card is None:
        raise NotFound("task_not_found", "There is no such validation task.")
    return card


def _dataset_of(ctx: Context, task_id: str) -> str | None:
    card = _cards(ctx).get(task_id)
    return card.dataset if card else None


def _visible_status(ctx: Context, who: Caller, request: Request, run_id: int) -> dict[str, Any]:
    """The run's status when the team may see it and the token names the task's dataset."""
    status = audited_lookup(ctx, who, "sandbox.run.read", f"run:{run_id}",
                            lambda: services.run_status(ctx, who.principal, run_id))
    tokens.check_scope(ctx, who, "sandbox:read", _dataset_of(ctx, status["task"]) or "",
                       endpoint(request))
    return status


@router.get("/tasks", response_model=list[TaskView], summary="Validation tasks",
            operation_id="list_tasks")
def list_tasks(ctx: Context = Depends(context),
               who: Caller = Depends(caller("sandbox:read"))) -> list[dict[str, Any]]:
    """The task cards on the datasets the token names (features, SQL, quotas, limits)."""
    return [services.task_summary(card) for card in services.tasks(ctx).values()
            if card.dataset in who.token.datasets]


@router.post("/runs", response_model=RunView, status_code=201, operation_id="submit_model",
             summary="Submit a model for validation (or a dry run)",
             responses={201: {"description": "The run, queued (or finished, for a dry run)",
                              "links": RUN_LINKS}})
def submit(request: Request,
           task: Annotated[str, Form(max_length=100, description="task id",
                                     examples=["wdbc-malignancy"])],
           model: Annotated[UploadFile, File(description="the ONNX model file")],
           name: Annotated[str, Form(max_length=1000)] = "",
           version: Annotated[str, Form(max_length=1000)] = "1",
           intended_use: Annotated[str, Form(max_length=10_000)] = "",
           training_data: Annotated[str, Form(max_length=10_000)] = "",
           dry_run: Annotated[bool, Form(description="score the task's synthetic twin now, "
                                                     "using no validation quota")] = False,
           final: Annotated[bool, Form(description="a final submission: the full released "
                                                   "report (limited per task version)")] = False,
           ctx: Context = Depends(context),
           who: Caller = Depends(caller("sandbox:submit"))) -> dict[str, Any]:
    """Check and queue an ONNX model (multipart upload) with its model card. A dry run is scored
    at once on the task's synthetic twin and returned finished; a validation is queued."""
    card = audited_lookup(ctx, who, "sandbox.submit", f"task:{task[:100]}",
                          lambda: _card(ctx, task))
    tokens.check_scope(ctx, who, "sandbox:submit", card.dataset, endpoint(request))
    model_card = {"name": name or (model.filename or "")[:100], "version": version,
                  "intended_use": intended_use, "training_data": training_data}
    if dry_run:
        return services.dry_run(ctx, who.principal, card.id, model.file, model_card,
                                model.filename)
    run_id = services.submit(ctx, who.principal, card.id, model.file, model_card,
                             model.filename, final=final)
    return services.run_status(ctx, who.principal, run_id)


@router.get("/runs", response_model=list[RunView], summary="The team's runs",
            operation_id="list_runs")
def list_runs(task: Annotated[str | None, Query(max_length=100)] = None,
              ctx: Context = Depends(context),
              who: Caller = Depends(caller("sandbox:read"))) -> list[dict[str, Any]]:
    """The team's runs (newest first) on tasks whose dataset the token names."""
    datasets = {card.id: card.dataset for card in _cards(ctx).values()}
    return [run for run in services.list_runs(ctx, who.principal, task_id=task)
            if datasets.get(run["task"]) in who.token.datasets]


@router.get("/runs/{run_id}", response_model=RunView, summary="A run's status",
            operation_id="run_status")
def run_status(run_id: RunId, request: Request, ctx: Context = Depends(context),
               who: Caller = Depends(caller("sandbox:read"))) -> dict[str, Any]:
    """Queued, running, awaiting review, completed, released, withheld or failed."""
    return _visible_status(ctx, who, request, run_id)


@router.get("/runs/{run_id}/report", response_model=dict[str, Any],
            summary="A run's validation report", operation_id="run_report")
def run_report(run_id: RunId, request: Request, ctx: Context = Depends(context),
               who: Caller = Depends(caller("sandbox:read"))) -> dict[str, Any]:
    """The released report, as the team may see it (``view: released``, see
    docs/report-schema.md); 403 ``report_not_released`` while it awaits review."""
    _visible_status(ctx, who, request, run_id)
    return audited_lookup(ctx, who, "sandbox.report.view", f"run:{run_id}",
                          lambda: services.released_report(ctx, who.principal, run_id))
