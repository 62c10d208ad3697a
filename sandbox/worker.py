"""Validation workers: execute a claimed run, record the result once.

Runs reach workers as jobs (:mod:`portal.jobs`: procrastinate on PostgreSQL, local worker
processes on SQLite), but the store stays the authority on who may finish a run: a claim is one
write transaction that marks the run running under the worker's name with a lease, a heartbeat
renews the lease while the run executes, and :func:`finish` records a result only while the
lease is still the worker's. A worker that dies leaves its lease to run out; the next claim or
sweep puts the run back in the queue (with a new job), or fails it after
``sandbox.store.MAX_TRIES`` tries — never stuck, never finished twice.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable

from portal import audit, authz
from portal.config import Settings
from portal.errors import Denied, InternalError
from portal.isolation import jobs as job_folders
from portal.jobs.heartbeat import Heartbeat
from portal.jobs.tasks import worker_name
from portal.store.db import transaction, utcnow
from sandbox import isolation, publish, runner, store

log = logging.getLogger(__name__)
CLAIM_LEASE_SECONDS = 300.0

__all__ = ["finish", "run_one", "run_job", "work", "worker_name"]


def _lease_seconds(settings: Settings) -> float:
    return float(getattr(settings, "worker_lease_seconds", CLAIM_LEASE_SECONDS))


def finish(conn: sqlite3.Connection, run_id: int, owner: str, result: runner.RunResult,
           report_file: str | None, settings: Settings | None = None) -> str | None:
    """Record a result if ``owner`` still holds the run's lease; returns the new status (None
    when the lease was lost and another worker owns the run now).

    A validation whose scores the singling-out check flagged waits for staff review even when
    its task needs none; one that becomes visible to its team at once (``completed``) gets its
    released report here, in the same transaction (:func:`sandbox.publish.publish`)."""
    settings = settings or getattr(conn, "settings", None)
    flagged = bool((result.singling_out or {}).get("flagged"))
    with transaction(conn):
        if not store.owns(conn, run_id, owner):
            return None
        run = store.get_run(conn, run_id)
        ended = _access_ended(conn, run)
        if ended is not None:  # access ended while it ran: nothing of its results is kept
            result, report_file = ended, None
        if result.outcome != "ok":
            status = "failed"
        elif run["kind"] == "validation" and (run["review_required"] or flagged):
            status = "awaiting_review"
        else:
            status = "completed"
        primary = (result.report or {}).get("primary", {}).get("value")
        check = json.dumps(result.singling_out) if result.singling_out is not None else None
        store.set_status(conn, run_id, status, outcome=result.outcome,
                         message=result.message[:1000], release_version=result.release_version,
                         report_file=report_file, primary_value=primary, finished_at=utcnow(),
                         lease_owner=None, lease_expires_at=None, singling_out=check,
                         flagged=int(flagged))
        if status == "completed" and run["kind"] == "validation" and report_file:
            publish.publish(settings, conn, run_id)
        audit.record(conn, actor=f"worker:{owner}", team=run["team"], action="sandbox.run.finish",
                     target=f"run:{run_id}", decision="done" if status != "failed" else "failed",
                     reason=result.outcome,
                     details={"status": status, "kind": run["kind"], "task": run["task_id"],
                              "release_version": result.release_version,
                              "model_sha256": run["sha256"], "flagged": flagged})
    return status


def run_one(settings: Settings, conn: sqlite3.Connection, owner: str,
            before_execute: Callable[[int], None] | None = None,
            only_id: int | None = None) -> int | None:
    """Claim and execute at most one run (``only_id``: that run only). Returns its id, or None
    when there was nothing to claim."""
    lease = _lease_seconds(settings)
    run_id, _ = store.claim(conn, owner, lease, only_id=only_id)
    if run_id is None:
        return None
    _execute_claimed(settings, conn, owner, run_id, before_execute)
    return run_id


def run_job(settings: Settings, conn: sqlite3.Connection, owner: str, run_id: int) -> int:
    """The ``validation.run`` job: claim ``run_id`` and execute it. Returns 1 when this worker
    finished it, 0 when there was nothing to do (already finished elsewhere, or withdrawn).

    Raises portal.jobs.RetryLater while another live worker holds the run's lease, and
    InternalError(code='isolation_unavailable') without isolation (the job is retried on a
    capable worker; the run stays queued)."""
    from portal.jobs import RetryLater

    _check_isolation(settings)
    claimed, _ = store.claim(conn, owner, _lease_seconds(settings), kinds=("validation",),
                             only_id=run_id)
    if claimed is None:
        row = conn.execute("SELECT status FROM sandbox_runs WHERE id = ?", (run_id,)).fetchone()
        if row is not None and row["status"] == "running":
            raise RetryLater(f"run {run_id} is leased by another worker",
                             _lease_seconds(settings) / 2)
        return 0
    return int(_execute_claimed(settings, conn, owner, claimed, None) is not None)


def _execute_claimed(settings: Settings, conn: sqlite3.Connection, owner: str, run_id: int,
                     before_execute: Callable[[int], None] | None) -> str | None:
    lease = _lease_seconds(settings)
    renew = lambda beat_conn: store.extend_lease(beat_conn, run_id, owner, lease)  # noqa: E731
    with Heartbeat(settings, renew, lease / 3):
        run = store.get_run(conn, run_id)
        if before_execute:
            before_execute(run_id)
        report_file = None
        try:
            result = _access_ended(conn, run) or runner.execute(settings, conn, run)
            if result.report is not None:
                report_file = runner.write_report(settings, run_id, result.report)
        except Exception:  # a platform fault: recorded, never shown in detail to the team
            log.exception("validation run %s failed on the platform side", run_id)
            result = runner.RunResult("internal_error",
                                      "A platform problem stopped this run; staff have been told.")
        return finish(conn, run_id, owner, result, report_file, settings)


def _access_ended(conn: sqlite3.Connection, run: sqlite3.Row) -> runner.RunResult | None:
    """The ``access_ended`` result when the team's access needed by ``run`` ended (grant revoked
    or expired — time passing counts, not only a recorded event —, team or member suspended),
    checked when a run is claimed and again before its result is stored; else None."""
    try:
        authz.check_run_access(conn, run)
    except Denied as exc:
        return runner.RunResult("access_ended", f"Not scored: {exc.message} ({exc.code})")
    return None


def _check_isolation(settings: Settings) -> None:
    """The real launcher, with the portal's home hidden, or a loud refusal."""
    reason = isolation.unavailable_reason((settings.home,))
    if reason is not None and not settings.sandbox_allow_unisolated:
        log.error("validation worker refuses to run models: isolation unavailable (%s)", reason)
        raise InternalError("Model isolation is not available on this machine; the validation "
                            "worker refuses to run models without it.",
                            code="isolation_unavailable")


def work(settings: Settings, once: bool = False, poll_seconds: float = 2.0,
         stop: Callable[[], bool] | None = None, name: str | None = None) -> int:
    """The worker loop: runs jobs (:func:`portal.jobs.run_worker`). With ``once``, process
    ready jobs until none is left, then return. Returns how many runs were finished.

    Verifies isolation first (the real launcher, with the portal's home hidden): without it
    (and without the development setting) the worker refuses to start, raising
    InternalError(code='isolation_unavailable'), rather than claiming runs it would have to
    fail. Then it removes job folders left by scorers whose worker is gone."""
    from portal import jobs

    _check_isolation(settings)
    job_folders.sweep_job_folders()
    del poll_seconds  # the job engines poll (and listen) on their own
    return jobs.run_worker(settings, once=once, stop=stop, name=name)
