"""Validation workers: claim a queued run from the store, execute it, record the result.

Several workers (threads, processes or machines sharing the store) are safe together: a claim
is one write transaction (``BEGIN IMMEDIATE``) that marks the run running under the worker's
name with a lease. A worker that dies leaves its lease to expire; the next claim puts the run
back in the queue, or fails it after ``sandbox.store.MAX_TRIES`` tries — never stuck.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable

from portal import audit
from portal.config import Settings
from portal.errors import InternalError
from portal.isolation import jobs
from portal.store.db import open_store, transaction, utcnow
from sandbox import isolation, runner, store

log = logging.getLogger(__name__)
CLAIM_LEASE_SECONDS = 300.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _extend_lease(conn: sqlite3.Connection, run_id: int, owner: str, seconds: float) -> None:
    with transaction(conn):
        conn.execute("UPDATE sandbox_runs SET lease_expires_at = ? WHERE id = ? AND"
                     " lease_owner = ? AND status = 'running'",
                     (time.time() + seconds, run_id, owner))


def finish(conn: sqlite3.Connection, run_id: int, owner: str, result: runner.RunResult,
           report_file: str | None) -> str | None:
    """Record a result if ``owner`` still holds the run's lease; returns the new status (None
    when the lease was lost and another worker owns the run now)."""
    with transaction(conn):
        if not store.owns(conn, run_id, owner):
            return None
        run = store.get_run(conn, run_id)
        if result.outcome != "ok":
            status = "failed"
        elif run["kind"] == "validation" and run["review_required"]:
            status = "awaiting_review"
        else:
            status = "completed"
        primary = (result.report or {}).get("primary", {}).get("value")
        store.set_status(conn, run_id, status, outcome=result.outcome,
                         message=result.message[:1000], release_version=result.release_version,
                         report_file=report_file, primary_value=primary, finished_at=utcnow(),
                         lease_owner=None, lease_expires_at=None)
        audit.record(conn, actor=f"worker:{owner}", team=run["team"], action="sandbox.run.finish",
                     target=f"run:{run_id}", decision="done" if status != "failed" else "failed",
                     reason=result.outcome,
                     details={"status": status, "kind": run["kind"], "task": run["task_id"],
                              "release_version": result.release_version,
                              "model_sha256": run["sha256"]})
    return status


def run_one(settings: Settings, conn: sqlite3.Connection, owner: str,
            before_execute: Callable[[int], None] | None = None,
            only_id: int | None = None) -> int | None:
    """Claim and execute at most one run (``only_id``: that run only). Returns its id, or None
    when there was nothing to claim."""
    run_id, lost = store.claim(conn, owner, CLAIM_LEASE_SECONDS, only_id=only_id)
    for failed_id in lost:
        audit.record(conn, actor=f"worker:{owner}", action="sandbox.run.lost",
                     target=f"run:{failed_id}", decision="failed", reason="lease_expired")
    if run_id is None:
        return None
    run = store.get_run(conn, run_id)
    card = store.task_version(conn, run["task_id"], run["task_version"])
    _extend_lease(conn, run_id, owner, card.limits.wall_seconds * 2 + CLAIM_LEASE_SECONDS)
    if before_execute:
        before_execute(run_id)
    report_file = None
    try:
        result = runner.execute(settings, conn, run)
        if result.report is not None:
            report_file = runner.write_report(settings, run_id, result.report)
    except Exception:  # a platform fault: recorded, never shown in detail to the team
        log.exception("validation run %s failed on the platform side", run_id)
        result = runner.RunResult("internal_error",
                                  "A platform problem stopped this run; staff have been told.")
    finish(conn, run_id, owner, result, report_file)
    return run_id


def work(settings: Settings, once: bool = False, poll_seconds: float = 2.0,
         stop: Callable[[], bool] | None = None) -> int:
    """The worker loop. With ``once``, process queued runs until the queue is empty, then
    return. Returns how many runs were processed.

    Verifies isolation first (the real launcher, with the portal's home hidden): without it
    (and without the development setting) the worker refuses to start, raising
    InternalError(code='isolation_unavailable'), rather than claiming runs it would have to
    fail. Then it removes job folders left by scorers whose worker is gone."""
    reason = isolation.unavailable_reason((settings.home,))
    if reason is not None and not settings.sandbox_allow_unisolated:
        log.error("validation worker refuses to start: isolation unavailable (%s)", reason)
        raise InternalError("Model isolation is not available on this machine; the validation "
                            "worker refuses to run models without it.",
                            code="isolation_unavailable")
    jobs.sweep_job_folders()
    conn = open_store(settings)
    owner = worker_name()
    done = 0
    try:
        while not (stop and stop()):
            run_id = run_one(settings, conn, owner)
            if run_id is not None:
                done += 1
                continue
            if once:
                break
            time.sleep(poll_seconds)
    finally:
        conn.close()
    return done
