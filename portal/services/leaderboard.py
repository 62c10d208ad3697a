"""Leaderboards (one per task and release) and the platform's reference models.

A board lists each team's best validation run on a task version and dataset release, by the
task's primary metric with its 95% interval, the platform's reference model among them, and for
every entry the paired DeLong test of its AUROC against the leader's on the same held-out cases
(from the structural components each run keeps; no labels are read here). Figures come through
:mod:`portal.services.team_view`: teams see the public board (each team's *released* best and
the reference) plus their own team's entries; staff see every run with a report, exactly.
"""

from __future__ import annotations

import sqlite3
from functools import lru_cache
from pathlib import Path
from typing import Any

from portal import audit, authz
from portal.errors import Denied, NotFound
from portal.identity import Principal
from portal.services.attempts import use_case
from portal.services.context import Context
from portal.services.sandbox import _display_name, _store_model_file, clean_model_card, get_task
from portal.services.team_view import report_for
from portal.store.db import transaction
from sandbox import delong, intake, runner, states
from sandbox import store as runs
from sandbox.tasks import TaskCard

REFERENCE_TEAM = "platform"
LOWER_IS_BETTER = frozenset({"brier"})
PUBLIC_STATUSES = frozenset({"released"})


def _board_rows(conn: sqlite3.Connection, card: TaskCard,
                release_version: str) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT r.id, r.team, r.status, r.reference, r.report_file, r.released_file,"
        " r.final_report, r.components_file,"
        " r.release_version, r.created_at, m.name AS model_name, m.model_version,"
        " t.name AS team_name FROM sandbox_runs r JOIN sandbox_models m ON m.id = r.model_id"
        " LEFT JOIN teams t ON t.slug = r.team"
        " WHERE r.task_id = ? AND r.task_version = ? AND r.kind = 'validation'"
        " AND r.release_version = ? AND r.report_file IS NOT NULL"
        " AND r.status IN ('completed', 'released', 'awaiting_review', 'withheld')"
        " ORDER BY r.id", (card.id, card.version, release_version)).fetchall()


def releases_with_results(conn: sqlite3.Connection, card: TaskCard) -> list[str]:
    """Release versions with at least one report on this task version, newest first."""
    rows = conn.execute(
        "SELECT release_version, max(id) AS last FROM sandbox_runs WHERE task_id = ?"
        " AND task_version = ? AND kind = 'validation' AND report_file IS NOT NULL"
        " AND release_version IS NOT NULL GROUP BY release_version ORDER BY last DESC",
        (card.id, card.version)).fetchall()
    return [r["release_version"] for r in rows]


def _shown(row: sqlite3.Row, principal: Principal, staff: bool) -> bool:
    if staff:
        return True
    if not row["released_file"]:
        return False
    if row["team"] == principal.team:
        return row["status"] in states.VISIBLE_TO_TEAM
    return (bool(row["reference"]) and row["status"] == "completed") or \
        row["status"] in PUBLIC_STATUSES


def _better(metric: str, a: float, b: float) -> bool:
    return a < b if metric in LOWER_IS_BETTER else a > b


@lru_cache(maxsize=1024)
def _compare(reports_dir: str, leader_file: str, entry_file: str) -> delong.Comparison:
    # component files are write-once and content-addressed: a cached comparison never goes stale
    folder = Path(reports_dir)
    return delong.paired_from_components(runner.read_components_at(folder, leader_file),
                                         runner.read_components_at(folder, entry_file))


def _entry(ctx: Context, row: sqlite3.Row, principal: Principal, metric: str,
           staff: bool) -> dict[str, Any]:
    report = report_for(ctx, row, staff)
    primary = report["primary"]
    return {"run_id": int(row["id"]), "team": row["team"],
            "team_name": "Platform reference" if row["reference"] else (
                row["team_name"] or row["team"]),
            "model": f"{row['model_name']} {row['model_version']}",
            "metric": metric, "value": primary.get("value"), "lower": primary.get("lower"),
            "upper": primary.get("upper"), "reference": bool(row["reference"]),
            "own": not staff and row["team"] == principal.team,
            "status": row["status"], "final": bool(row["final_report"]),
            "source": primary.get("source", "exact" if staff else "released"),
            "components_file": row["components_file"],
            "created_at": row["created_at"]}


def _bests(entries: list[dict[str, Any]], metric: str) -> set[int]:
    best: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e["value"] is None:
            continue
        current = best.get(e["team"])
        if current is None or _better(metric, e["value"], current["value"]):
            best[e["team"]] = e
    return {e["run_id"] for e in best.values()}


def statement(comparison: dict[str, Any] | None, is_leader: bool) -> str:
    """A sentence for people on how an entry compares with the leader."""
    if is_leader:
        return "leader"
    if comparison is None:
        return "no paired comparison (no held-out components for this run)"
    p = comparison.get("p_value")
    if p is None:
        shown = "p < 0.05" if comparison["distinguishable"] else "p ≥ 0.05"
    else:
        shown = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
    if comparison["distinguishable"]:
        return f"distinguishable from the leader ({shown}, paired DeLong)"
    return f"not distinguishable from the leader ({shown}, paired DeLong)"


@use_case("sandbox.leaderboard.view", "task:{task_id}")
def leaderboard(ctx: Context, principal: Principal, task_id: str,
                release_version: str | None = None) -> dict[str, Any]:
    """The board of a task on a release (default: the newest release with results).

    Members see the public board (each team's best released run and the platform reference)
    and every completed or released run of their own team; staff see every run with a report.
    Entries are ranked by the primary metric (for members, as their released reports give it:
    a final report's rounded figure with its interval, otherwise the Ladder's figure);
    ``comparison`` is the paired DeLong test of the entry's AUROC against the leader's (for
    members only whether it is distinguishable). Raises Denied for visitors without a role, NotFound
    for an unknown task or release."""
    staff = authz.can_staff_or_operator(ctx.conn, principal)
    if not staff and not authz.can_member(ctx.conn, principal):
        raise Denied("not_a_member", "Sign in as a team member or staff to see leaderboards.")
    card = get_task(ctx, task_id)
    versions = releases_with_results(ctx.conn, card)
    if release_version is None:
        release_version = versions[0] if versions else None
    elif release_version not in versions:
        raise NotFound("release_not_found", "There is no leaderboard for that release.")
    board = {"task": card.id, "task_version": card.version, "title": card.title,
             "metric": card.primary_metric, "release_version": release_version,
             "releases": versions, "entries": [], "leader": None, "staff_view": staff}
    if release_version is None:
        return board
    metric = card.primary_metric
    rows = [r for r in _board_rows(ctx.conn, card, release_version)
            if _shown(r, principal, staff)]
    entries = [_entry(ctx, r, principal, metric, staff) for r in rows]
    bests = _bests(entries, metric)
    for e in entries:
        e["team_best"] = e["run_id"] in bests
    public_or_own = [e for e in entries if e["team_best"] or e["own"] or staff]
    ranked = sorted((e for e in public_or_own if e["value"] is not None),
                    key=lambda e: e["value"], reverse=metric not in LOWER_IS_BETTER)
    ranked += [e for e in public_or_own if e["value"] is None]
    leader = next((e for e in ranked if e["team_best"]), None)
    for rank, e in enumerate(ranked, start=1):
        e["rank"] = rank
        e["comparison"] = _comparison(ctx, leader, e, exact=staff)
        e["statement"] = statement(e["comparison"], leader is not None and e is leader)
    for e in ranked:
        del e["components_file"]  # platform-only file names never leave this module
    board.update(entries=ranked, leader=leader["run_id"] if leader else None)
    return board


def _comparison(ctx: Context, leader: dict[str, Any] | None, entry: dict[str, Any],
                exact: bool) -> dict[str, Any] | None:
    """The paired test of ``entry`` against the leader. Teams get only whether the two are
    distinguishable at the 5% level (one bit, from exact figures); staff get the difference,
    its interval and the p-value."""
    if leader is None or entry is leader or not (leader["components_file"] and
                                                 entry["components_file"]):
        return None
    try:
        result = _compare(str(ctx.settings.reports_dir), leader["components_file"],
                          entry["components_file"])
    except (OSError, ValueError):
        return None
    if not exact:
        return {"distinguishable": result.distinguishable}
    return {"difference": result.auc_a - result.auc_b, "lower": result.lower,
            "upper": result.upper, "p_value": result.p_value,
            "distinguishable": result.distinguishable}


def _queue_reference(ctx: Context, actor: str, card: TaskCard, data: bytes,
                     model_card: dict[str, str]) -> int:
    meta = clean_model_card(model_card)
    cap = card.limits.max_model_mb * 1024 * 1024
    accepted = intake.check_model(data, intake.InputSpec(card.input.name, card.width), cap)
    _store_model_file(ctx, accepted)
    with transaction(ctx.conn):
        model_id = runs.insert_model(
            ctx.conn, sha256=accepted.sha256, size_bytes=accepted.size, team=REFERENCE_TEAM,
            uploaded_by=actor, name=meta["name"], model_version=meta["version"],
            intended_use=meta["intended_use"], training_data=meta["training_data"],
            producer=accepted.producer)
        run_id = runs.insert_run(ctx.conn, kind="validation", card=card, team=REFERENCE_TEAM,
                                 requested_by=actor, model_id=model_id, final=True,
                                 reference=True)
        audit.record(ctx.conn, actor=actor, action="sandbox.reference.publish",
                     target=f"run:{run_id}", decision="done",
                     details={"task": card.key, "model_sha256": accepted.sha256,
                              "upload_name": _display_name("reference.onnx")})
    return run_id


@use_case("sandbox.reference.publish", "task:{task_id}")
def publish_reference(ctx: Context, staff: Principal, task_id: str, model: bytes,
                      model_card: dict[str, str]) -> int:
    """Staff publish a reference model for a task: checked at intake like any model, queued
    for validation on the current release, shown on the board without review. Returns the
    run id. Raises Denied (staff only), NotFound, InvalidInput or InvalidUpload."""
    authz.check_staff(ctx.conn, staff)
    return _queue_reference(ctx, staff.actor, get_task(ctx, task_id), model, model_card)


def seed_reference_models(ctx: Context) -> dict[str, int]:
    """Demo seed step: for every task whose dataset has a current release and no reference run
    on it yet, fit the reference model on the **dev** partition and queue it. Returns
    {task id: run id}. Tasks without a release are skipped."""
    from portal.catalog.releases import current_release
    from portal.errors import NotFound as Missing
    from portal.services.sandbox import tasks
    from sandbox import features, reference

    queued: dict[str, int] = {}
    for card in tasks(ctx).values():
        try:
            release = current_release(ctx.conn, ctx.settings, card.dataset)
        except Missing:
            continue
        exists = ctx.conn.execute(
            "SELECT 1 FROM sandbox_runs WHERE task_id = ? AND task_version = ? AND reference = 1"
            " AND status <> 'failed'", (card.id, card.version)).fetchone()
        if exists:
            continue
        dev = features.build_dev(card, release)  # dev rows only
        data = reference.build(dev.features, dev.labels, card.input.name)
        queued[card.id] = _queue_reference(
            ctx, "system", card, data,
            reference.model_card(card.title, card.dataset, release.version))
    return queued


__all__ = ["REFERENCE_TEAM", "leaderboard", "publish_reference", "releases_with_results",
           "seed_reference_models", "statement"]
