"""Validation sandbox use cases: tasks, submissions, dry runs, runs, reports, review, quotas.

Every function checks who may act, performs the write and records its audit event in the same
transaction. Audit events hold references (run, task, model hash), codes and counts — never data
values or figures computed from held-out rows.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any, BinaryIO

from portal import audit, authz
from portal.errors import Denied, InvalidInput, InvalidUpload, NotFound, QuotaExceeded
from portal.identity import Principal
from portal.services.attempts import use_case
from portal.services.context import Context
from portal.store.db import transaction, utcnow
from sandbox import intake, publish, receipts, runner, states
from sandbox import store as runs
from sandbox.tasks import TaskCard, load_cards

MODEL_CARD_FIELDS = {"name": 100, "version": 40, "intended_use": 2000, "training_data": 2000}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def tasks(ctx: Context) -> dict[str, TaskCard]:
    """The bundled task cards, each (id, version) registered with its protocol hash.

    Raises ConfigError (``task_protocol_changed``) when a card's protocol changed but its
    version did not."""
    cards = load_cards(ctx.settings.tasks_dir or ctx.settings.project_root / "sandbox" / "tasks")
    with transaction(ctx.conn):
        for card in cards.values():
            runs.register_task(ctx.conn, card)
    return cards


def get_task(ctx: Context, task_id: str) -> TaskCard:
    card = tasks(ctx).get(task_id)
    if card is None:
        raise NotFound("task_not_found", "There is no such validation task.")
    return card


def task_summary(card: TaskCard) -> dict[str, Any]:
    """What anyone signed in may read about a task: the card, including the published SQL."""
    return {"id": card.id, "version": card.version, "dataset": card.dataset,
            "title": card.title, "question": card.question,
            "protocol_hash": card.protocol_hash, "primary_metric": card.primary_metric,
            "metrics": list(card.metrics), "thresholds": list(card.thresholds),
            "input": {"name": card.input.name, "dtype": card.input.dtype,
                      "shape": ["N", card.width]},
            "features": [c.model_dump() for c in card.features.columns],
            "population_sql": card.population_sql, "label_sql": card.label_sql,
            "feature_sql": card.features.sql,
            "subgroups": [g.name for g in card.subgroups.groups],
            "min_subgroup_size": card.subgroups.min_size,
            "quotas": card.quotas.model_dump(), "limits": card.limits.model_dump(),
            "review_required": card.review_required, "grant_required": card.grant_required}


@use_case("sandbox.quota")
def quota_status(ctx: Context, principal: Principal, card: TaskCard) -> dict[str, Any]:
    """Today's use and limits for the principal's team on a task (UTC day), the final reports
    used on the task version (``final_reports_used`` of ``final_reports_limit``) and the
    team's Ladder (``ladder_best``: the team-visible best primary metric, ``ladder_updates``,
    ``ladder_submissions``, ``ladder_margin``)."""
    team = principal.team or ""
    used = runs.usage(ctx.conn, team, card.id)
    q = card.quotas
    ladder = runs.ladder(ctx.conn, team, card.id, card.version)
    return {"day": runs.today(), "attempts_used": used["attempts"],
            "attempts_limit": q.attempts_per_day, "valid_runs_used": used["valid_runs"],
            "valid_runs_limit": q.valid_runs_per_day, "dry_runs_used": used["dry_runs"],
            "dry_runs_limit": q.dry_runs_per_day,
            "final_reports_used": runs.final_reports_used(ctx.conn, team, card.id,
                                                          card.version),
            "final_reports_limit": card.disclosure.final_reports,
            "ladder_metric": card.primary_metric,
            "ladder_best": ladder["best_value"] if ladder is not None else None,
            "ladder_updates": ladder["updates"] if ladder is not None else 0,
            "ladder_submissions": ladder["submissions"] if ladder is not None else 0,
            "ladder_margin": card.disclosure.ladder_margin}


def _check_member(ctx: Context, principal: Principal) -> str:
    _, team = authz.check_member(ctx.conn, principal)
    return str(team["slug"])


def _check_grant(ctx: Context, principal: Principal, card: TaskCard) -> None:
    if not card.grant_required:
        return
    authz.check_dataset(ctx.conn, principal, card.dataset)


def clean_model_card(model_card: dict[str, Any]) -> dict[str, str]:
    """The four model-card fields, stripped of control characters, each required and capped.

    Raises InvalidInput(code='model_card_invalid')."""
    cleaned = {}
    for field, cap in MODEL_CARD_FIELDS.items():
        value = _CONTROL.sub("", str(model_card.get(field) or "")).strip()
        if not value or len(value) > cap:
            raise InvalidInput("model_card_invalid",
                               f"The model card needs {field.replace('_', ' ')} "
                               f"(1 to {cap} characters).")
        cleaned[field] = value
    return cleaned


def _display_name(filename: str | None) -> str:
    """The upload's file name, made safe for the audit log (never used as a path)."""
    name = _CONTROL.sub("", str(filename or ""))
    name = name.replace("/", "_").replace("\\", "_")
    return name[:120] or "(unnamed)"


def _store_model_file(ctx: Context, accepted: intake.AcceptedModel) -> None:
    from portal.storage import write_once

    target = runner.model_path(ctx.settings, accepted.sha256)
    if not target.exists():  # content-addressed: the same bytes under the same name
        write_once(target, accepted.data)


def _check_quota(ctx: Context, card: TaskCard, team: str, kind: str,
                 final: bool = False) -> None:
    if final and runs.final_reports_used(ctx.conn, team, card.id, card.version) >= \
            card.disclosure.final_reports:
        raise QuotaExceeded("final_report_quota_exceeded",
                            f"Your team has used all {card.disclosure.final_reports} final "
                            f"submissions (full reports) for version {card.version} of this "
                            f"task. Submit without 'final' to see the Ladder's figure only.")
    used = runs.usage(ctx.conn, team, card.id)
    if kind == "dry_run":
        if used["dry_runs"] >= card.quotas.dry_runs_per_day:
            raise QuotaExceeded("dry_run_quota_exceeded",
                                f"Your team has used all {card.quotas.dry_runs_per_day} dry runs "
                                f"for this task today (UTC).")
        return
    if used["attempts"] >= card.quotas.attempts_per_day:
        raise QuotaExceeded("attempt_quota_exceeded",
                            f"Your team has used all {card.quotas.attempts_per_day} submission "
                            f"attempts for this task today (UTC).")
    if used["valid_runs"] >= card.quotas.valid_runs_per_day:
        raise QuotaExceeded("valid_run_quota_exceeded",
                            f"Your team has used all {card.quotas.valid_runs_per_day} validation "
                            f"runs for this task today (UTC).")


def _deny(ctx: Context, principal: Principal, action: str, target: str, exc: Exception,
          decision: str = "denied", details: dict[str, Any] | None = None) -> None:
    audit.record(ctx.conn, actor=principal.actor, team=principal.team, action=action,
                 target=target, decision=decision, reason=getattr(exc, "code", "error"),
                 details=details or {})


@use_case(lambda a: "sandbox.dry_run" if a["kind"] == "dry_run" else "sandbox.submit",
          "task:{task_id}")
def submit(ctx: Context, principal: Principal, task_id: str, upload: BinaryIO | bytes,
           model_card: dict[str, Any], filename: str | None = None,
           kind: str = "validation", final: bool = False) -> int:
    """Check and queue a model for validation (or a dry run). Returns the run id. A ``final``
    validation's team-visible report is the full released one; the card limits how many a
    team makes per task version (``disclosure.final_reports``).

    Raises Denied (not a member, no grant), QuotaExceeded (``final_report_quota_exceeded``
    among others), InvalidInput (model card) or InvalidUpload (intake; counts as an attempt
    but uses no valid-run slot)."""
    if kind not in ("validation", "dry_run"):
        raise InvalidInput("invalid_kind", "A submission is a validation or a dry run.")
    if final and kind != "validation":
        raise InvalidInput("invalid_kind", "Only a validation can be a final submission.")
    action, target = f"sandbox.{'submit' if kind == 'validation' else 'dry_run'}", f"task:{task_id}"
    card = get_task(ctx, task_id)
    try:
        team = _check_member(ctx, principal)
        _check_grant(ctx, principal, card)
        _check_quota(ctx, card, team, kind, final)
        meta = clean_model_card(model_card)
    except (Denied, QuotaExceeded, InvalidInput) as exc:
        _deny(ctx, principal, action, target, exc,
              "rejected" if isinstance(exc, InvalidInput) else "denied")
        raise
    cap = card.limits.max_model_mb * 1024 * 1024
    upload_name = _display_name(filename)
    try:
        stream = upload if not isinstance(upload, bytes | bytearray) else None
        data = intake.read_capped(stream, cap) if stream is not None else bytes(upload)
        accepted = intake.check_model(data, intake.InputSpec(card.input.name, card.width), cap)
    except InvalidUpload as exc:
        with transaction(ctx.conn):
            runs.insert_attempt(ctx.conn, team=team, task_id=card.id, kind=kind, accepted=False,
                                code=exc.code, run_id=None)
            _deny(ctx, principal, action, target, exc, "rejected",
                  {"upload_name": upload_name, "kind": kind})
        raise
    _store_model_file(ctx, accepted)
    with transaction(ctx.conn):
        _check_quota(ctx, card, team, kind, final)  # again, under the write lock
        model_id = runs.insert_model(
            ctx.conn, sha256=accepted.sha256, size_bytes=accepted.size, team=team,
            uploaded_by=principal.actor, name=meta["name"], model_version=meta["version"],
            intended_use=meta["intended_use"], training_data=meta["training_data"],
            producer=accepted.producer)
        run_id = runs.insert_run(ctx.conn, kind=kind, card=card, team=team,
                                 requested_by=principal.actor, model_id=model_id, final=final)
        runs.insert_attempt(ctx.conn, team=team, task_id=card.id, kind=kind, accepted=True,
                            code=None, run_id=run_id)
        audit.record(ctx.conn, actor=principal.actor, team=team, action=action,
                     target=f"run:{run_id}", decision="allowed",
                     details={"task": card.key, "model_sha256": accepted.sha256,
                              "size_bytes": accepted.size, "upload_name": upload_name,
                              "final": final})
    return run_id


@use_case("sandbox.dry_run", "task:{task_id}")
def dry_run(ctx: Context, principal: Principal, task_id: str, upload: BinaryIO | bytes,
            model_card: dict[str, Any], filename: str | None = None) -> dict[str, Any]:
    """Submit and immediately execute a dry run on the task's synthetic twin (no real rows, no
    validation quota). Returns the run's status."""
    from sandbox import worker

    run_id = submit(ctx, principal, task_id, upload, model_card, filename, kind="dry_run")
    worker.run_one(ctx.settings, ctx.conn, worker.worker_name(), only_id=run_id)
    return run_status(ctx, principal, run_id)


def _visible_run(ctx: Context, principal: Principal, run_id: int) -> sqlite3.Row:
    run = runs.get_run(ctx.conn, run_id)
    if not authz.is_operator(principal):
        authz.check_view_run(ctx.conn, principal, run)
    return run


def _results_visible(ctx: Context, principal: Principal, run: sqlite3.Row) -> bool:
    if authz.is_operator(principal):
        return True
    return authz.can_read_report(ctx.conn, principal, run)


@use_case("sandbox.run.view", "run:{run_id}")
def run_status(ctx: Context, principal: Principal, run_id: int) -> dict[str, Any]:
    """A run as its team (or staff) sees it. Raises NotFound for other teams' runs.

    ``primary_value``: for staff the exact figure; for the team the released one (the
    Ladder's, or a final report's rounded figure) once the report is visible. Staff also get
    ``exact_primary``, ``flagged`` and ``singling_out`` (the check of the run's scores)."""
    run = _visible_run(ctx, principal, int(run_id))
    is_staff = authz.can_staff_or_operator(ctx.conn, principal)
    team_sees = bool(run["released_file"]) and _results_visible(ctx, principal, run)
    status = {
        "id": run["id"], "kind": run["kind"], "task": run["task_id"],
        "task_version": run["task_version"], "protocol_hash": run["protocol_hash"],
        "team": run["team"], "status": run["status"],
        "status_text": states.STATES[run["status"]], "outcome": run["outcome"],
        "message": run["message"], "model": f"{run['model_name']} {run['model_version']}",
        "model_sha256": run["sha256"], "release_version": run["release_version"],
        "created_at": run["created_at"], "finished_at": run["finished_at"],
        "primary_value": (run["primary_value"] if is_staff else
                          run["released_primary"] if team_sees else None),
        "report_available": bool(run["report_file"]) if is_staff else team_sees,
        "review_reason": run["review_reason"] if run["status"] == "withheld" else None,
        "rerun_of": run["rerun_of"], "final": bool(run["final_report"]),
    }
    if is_staff:
        status.update(released_primary=run["released_primary"], flagged=bool(run["flagged"]),
                      singling_out=json.loads(run["singling_out"])
                      if run["singling_out"] else None,
                      released_available=bool(run["released_file"]))
    return status


@use_case("sandbox.runs.list")
def list_runs(ctx: Context, principal: Principal, task_id: str | None = None,
              status: str | None = None) -> list[dict[str, Any]]:
    """Staff (and the operator) see every run; members see their team's runs only."""
    if authz.can_staff_or_operator(ctx.conn, principal):
        team = None
    else:
        try:
            team = authz.check_member(ctx.conn, principal)[1]["slug"]
        except Denied as exc:
            if exc.code in ("user_suspended", "team_suspended"):
                raise
            raise Denied("not_a_member", "Sign in as a team member or staff to see runs.") from None
    rows = runs.list_runs(ctx.conn, team=team, status=status, task_id=task_id)
    return [run_status(ctx, principal, r["id"]) for r in rows]


def _not_released(ctx: Context, principal: Principal, run: sqlite3.Row) -> Denied:
    exc = Denied("report_not_released",
                 "This report is awaiting review by platform staff." if run["status"] ==
                 "awaiting_review" else "This run has no report you can see.")
    _deny(ctx, principal, "sandbox.report.view", f"run:{run['id']}", exc)
    return exc


def _document(ctx: Context, principal: Principal, run: sqlite3.Row, name: str, fmt: str,
              view: str) -> Any:
    audit.record(ctx.conn, actor=principal.actor, team=principal.team,
                 action="sandbox.report.view", target=f"run:{run['id']}", decision="allowed",
                 details={"format": fmt, "view": view})
    if fmt == "html":
        return publish.html_path(ctx.settings, name).read_text(encoding="utf-8")
    return json.loads((ctx.settings.reports_dir / name).read_text(encoding="utf-8"))


@use_case("sandbox.report.view", "run:{run_id}")
def released_report(ctx: Context, principal: Principal, run_id: int, fmt: str = "json") -> Any:
    """THE team-visible report of a run: the one accessor pages, the API, the CLI, leaderboards
    and exports use for anything a team may see (``fmt``: ``json`` gives a dict, ``html``
    text). It is the released report (``view: released``, docs/report-schema.md): for a final
    submission every figure as ``sandbox.disclosure`` releases it, otherwise the primary metric
    as the team's Ladder shows it (``metrics`` is null). Its receipt also signs the exact
    report's hash.

    Members of the run's team get it once the run is completed or released, and only while
    the team still holds the grant the task needs (re-read at every read:
    :func:`portal.authz.check_read_report`); staff may read it at any time after that, to see
    what the team sees. Raises NotFound (another team's run, or no report),
    Denied(code='report_not_released') while it awaits review or was withheld, or a grant code.
    Audited (``sandbox.report.view``, view ``released``)."""
    run = _visible_run(ctx, principal, int(run_id))
    staff = authz.can_staff_or_operator(ctx.conn, principal)
    if run["status"] not in states.VISIBLE_TO_TEAM or not run["released_file"]:
        if run["status"] == "failed" or (staff and not run["report_file"]):
            raise NotFound("report_not_found", "This run has no report (see its outcome).")
        raise _not_released(ctx, principal, run)
    if not staff:  # the grant the task needs, re-read at every read (revoked, expired by time)
        authz.check_read_report(ctx.conn, principal, run)
    return _document(ctx, principal, run, run["released_file"], fmt, "released")


@use_case("sandbox.report.view", "run:{run_id}")
def staff_report(ctx: Context, staff: Principal, run_id: int, fmt: str = "json") -> Any:
    """THE staff (exact) view of a run's report: every figure at full precision, the
    staff-only score cells and the singling-out check (``review.singling_out``), whatever the
    run's status. Staff only. Raises Denied (not staff), NotFound. Audited
    (``sandbox.report.view``, view ``exact``)."""
    authz.check_staff_or_operator(ctx.conn, staff)
    run = runs.get_run(ctx.conn, int(run_id))
    if not run["report_file"]:
        raise NotFound("report_not_found", "This run has no report (see its outcome).")
    return _document(ctx, staff, run, run["report_file"], fmt, "exact")


@use_case("sandbox.report.view", "run:{run_id}")
def report(ctx: Context, principal: Principal, run_id: int, fmt: str = "json") -> Any:
    """The report the principal's role sees: :func:`staff_report` for staff,
    :func:`released_report` for everyone else. New code should call one of those two."""
    if authz.can_staff_or_operator(ctx.conn, principal):
        return staff_report(ctx, principal, run_id, fmt)
    return released_report(ctx, principal, run_id, fmt)


def _review(ctx: Context, staff: Principal, run_id: int, new: str, reason: str | None) -> None:
    authz.check_staff_or_operator(ctx.conn, staff)
    with transaction(ctx.conn):
        run = runs.get_run(ctx.conn, int(run_id))
        if new == "released":  # results leave the platform only while the team may see them
            authz.check_run_access(ctx.conn, run)
        runs.set_status(ctx.conn, run["id"], new, reviewed_by=staff.actor, review_reason=reason,
                        reviewed_at=utcnow())
        if new == "released" and run["kind"] == "validation" and run["report_file"] \
                and not run["released_file"]:
            publish.publish(ctx.settings, ctx.conn, run["id"])
        audit.record(ctx.conn, actor=staff.actor, team=run["team"],
                     action=f"sandbox.run.{'release' if new == 'released' else 'withhold'}",
                     target=f"run:{run['id']}", decision="done", reason=reason,
                     details={"task": run["task_id"], "from": run["status"]})


@use_case("sandbox.run.release", "run:{run_id}")
def release_run(ctx: Context, staff: Principal, run_id: int) -> dict[str, Any]:
    """Staff release an awaiting (or withheld) run's report to its team: its released report
    is made now (the Ladder moves, see :mod:`sandbox.publish`); this is also the staff
    decision on a run the singling-out check flagged. Raises Denied (staff only) or
    Rejected(code='invalid_transition')."""
    _review(ctx, staff, run_id, "released", None)
    return run_status(ctx, staff, run_id)


@use_case("sandbox.run.withhold", "run:{run_id}")
def withhold_run(ctx: Context, staff: Principal, run_id: int, reason: str) -> dict[str, Any]:
    """Staff withhold a run's report, with a reason the team sees."""
    reason = _CONTROL.sub("", reason or "").strip()
    if not 3 <= len(reason) <= 1000:
        raise InvalidInput("reason_required", "Give a reason (3 to 1000 characters).")
    _review(ctx, staff, run_id, "withheld", reason)
    return run_status(ctx, staff, run_id)


@use_case("sandbox.rerun", "task:{task_id}")
def rerun_latest(ctx: Context, staff: Principal, task_id: str) -> list[int]:
    """Queue the latest released (or completed) model of every team on the task's current
    card and the dataset's current release, for teams that still hold the task's grant.
    Returns the new run ids (no team quota used)."""
    authz.check_staff_or_operator(ctx.conn, staff)
    card = get_task(ctx, task_id)
    latest = ctx.conn.execute(
        "SELECT team, max(id) AS id FROM sandbox_runs WHERE task_id = ? AND kind = 'validation'"
        " AND status IN ('released', 'completed') GROUP BY team ORDER BY team",
        (card.id,)).fetchall()
    new_ids = []
    with transaction(ctx.conn):
        for row in latest:
            source = runs.get_run(ctx.conn, row["id"])
            if not authz.can_team_access(ctx.conn, source["team"],
                                         card.dataset if card.grant_required else None):
                continue
            run_id = runs.insert_run(ctx.conn, kind="validation", card=card, team=source["team"],
                                     requested_by=staff.actor, model_id=source["model_id"],
                                     rerun_of=source["id"])
            new_ids.append(run_id)
        audit.record(ctx.conn, actor=staff.actor, action="sandbox.rerun",
                     target=f"task:{card.id}", decision="done",
                     details={"task": card.key, "runs": new_ids})
    return new_ids


@use_case("sandbox.holdout.export", "task:{task_id}")
def export_holdout(ctx: Context, staff: Principal, task_id: str, out: Path) -> int:
    """Write the task's held-out features, labels and subgroup attributes to a Parquet file for
    the data owner's own checks (staff only; audited). Returns the row count. ``out`` must lie
    outside the portal's own state (see :mod:`portal.outputs`); raises Denied, NotFound,
    InvalidInput (``output_*``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from portal.catalog.releases import current_release
    from portal.outputs import atomic_output, check_output
    from sandbox import features

    authz.check_staff_or_operator(ctx.conn, staff)
    check_output(ctx.settings, out)
    card = get_task(ctx, task_id)
    release = current_release(ctx.conn, ctx.settings, card.dataset)
    held = features.build_holdout(card, release.holdout_path)
    columns: dict[str, Any] = {"row_id": held.row_ids.astype(str), "label": held.labels}
    columns.update({f"group_{k}": v for k, v in held.groups.items()})
    columns.update({name: held.features[:, i] for i, name in enumerate(card.feature_names)})
    with atomic_output(ctx.settings, out) as tmp:
        pq.write_table(pa.table(columns), str(tmp))
    audit.record(ctx.conn, actor=staff.actor, action="sandbox.holdout.export",
                 target=f"task:{card.id}", decision="done",
                 details={"task": card.key, "release_version": release.version,
                          "rows": held.rows})
    return held.rows


MAX_REPORT_BYTES = 50 * 1024 * 1024


def verify_report(ctx: Context, path: Path) -> dict[str, Any]:
    """Check a report file's receipt against the platform key. Never raises for a bad file."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_REPORT_BYTES + 1)
        document = json.loads(raw) if len(raw) <= MAX_REPORT_BYTES else None
    except (OSError, ValueError):
        document = None
    if document is None:
        ok, reason = False, "the file is not a readable report"
    else:
        ok, reason = receipts.verify(ctx.settings, document)
    run_id = document.get("run", {}).get("id") if isinstance(document, dict) else None
    audit.record(ctx.conn, actor="cli", action="sandbox.report.verify",
                 target=f"run:{run_id}" if run_id else None,
                 decision="done" if ok else "failed", reason=None if ok else reason)
    return {"ok": ok, "reason": reason, "run_id": run_id}


def process_queue(ctx: Context, once: bool = False) -> int:
    """Run the worker loop (``once``: until the queue is empty). Returns runs processed."""
    from sandbox import worker

    return worker.work(ctx.settings, once=once)
