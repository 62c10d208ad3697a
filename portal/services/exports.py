"""Exports of a validation report: the CHAI Applied Model Card (XML) and the TRIPOD+AI
checklist. Both read figures through :mod:`portal.services.team_view` (exact for staff), the
task card the run used and the narrative the team wrote at upload. Each export is audited."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from portal import audit, authz
from portal.identity import Principal
from portal.services.attempts import use_case
from portal.services.context import Context
from portal.services.sandbox import reportable_run, task_summary
from portal.services.team_view import report_for
from sandbox import modelcard, tripod
from sandbox.store import task_version


def _sources(ctx: Context, principal: Principal, run_id: int
             ) -> tuple[sqlite3.Row, dict[str, Any], dict[str, Any]]:
    run = reportable_run(ctx, principal, run_id)
    card = task_summary(task_version(ctx.conn, run["task_id"], run["task_version"]))
    return run, report_for(ctx, run, authz.can_staff_or_operator(ctx.conn, principal)), card


def _audit(ctx: Context, principal: Principal, action: str, run_id: int) -> None:
    audit.record(ctx.conn, actor=principal.actor, team=principal.team, action=action,
                 target=f"run:{int(run_id)}", decision="allowed")


@use_case("sandbox.modelcard.export", "run:{run_id}")
def model_card_xml(ctx: Context, principal: Principal, run_id: int) -> str:
    """The run's report as a CHAI Applied Model Card v0.2 XML document. Same visibility as
    the report (raises NotFound, Denied(code='report_not_released'))."""
    run, report, card = _sources(ctx, principal, run_id)
    try:
        narrative = json.loads(run["narrative"] or "{}")
    except ValueError:
        narrative = {}
    document = modelcard.build(report, card, narrative if isinstance(narrative, dict) else {})
    _audit(ctx, principal, "sandbox.modelcard.export", run_id)
    return document


@use_case("sandbox.tripod.export", "run:{run_id}")
def tripod_checklist(ctx: Context, principal: Principal, run_id: int) -> list[dict[str, str]]:
    """The TRIPOD+AI items the platform fills for the run, with where each is (and the items
    left to the team). Same visibility as the report."""
    _, report, card = _sources(ctx, principal, run_id)
    rows = tripod.checklist(report, card)
    _audit(ctx, principal, "sandbox.tripod.export", run_id)
    return rows
