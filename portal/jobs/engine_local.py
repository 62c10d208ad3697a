"""The embedded job engine: the ``jobs`` table of the SQLite store, claimed by local worker
processes under a renewable lease.

The same guarantees as the PostgreSQL engine, on one machine: a job is claimed by one worker at a
time (the claim is one write transaction), a job whose worker died is claimed again once its
lease runs out (up to :data:`MAX_ATTEMPTS`), a task that asks to wait (RetryLater) is scheduled
later, and the periodic tasks (sweep, re-validation) are queued once per slot whichever worker
notices first (a unique key per slot).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

from portal.jobs import RetryLater
from portal.jobs.heartbeat import Heartbeat
from portal.jobs.tasks import HANDLERS
from portal.store.db import open_store, transaction, utcnow

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 50  # RetryLater counts as an attempt; a failing task stops long before
MAX_FAILURES = 3
POLL_SECONDS = 0.5


def _scope(conn: Any):
    return nullcontext(conn) if conn.in_transaction else transaction(conn)


def defer(conn: Any, task: str, key: str | None, delay: float, args: dict[str, Any],
          once_key: str | None = None) -> bool:
    """Insert a waiting job (see :func:`portal.jobs.defer`)."""
    with _scope(conn):
        if key and conn.execute("SELECT 1 FROM jobs WHERE dedupe_key = ? AND status = 'todo'",
                                (key,)).fetchone():
            return False
        if once_key and conn.execute("SELECT 1 FROM jobs WHERE once_key = ?",
                                     (once_key,)).fetchone():
            return False
        conn.execute(
            "INSERT INTO jobs (task, args, status, dedupe_key, once_key, run_after, created_at)"
            " VALUES (?, ?, 'todo', ?, ?, ?, ?)",
            (task, json.dumps(args, sort_keys=True), key, once_key, time.time() + delay,
             utcnow()))
    return True


def _waiting_twin(conn: Any, job: Any) -> bool:
    """Whether another job with the same dedupe key is already waiting."""
    return bool(job["dedupe_key"]) and conn.execute(
        "SELECT 1 FROM jobs WHERE dedupe_key = ? AND status = 'todo' AND id <> ?",
        (job["dedupe_key"], job["id"])).fetchone() is not None


def _release_expired(conn: Any, now: float) -> None:
    for job in conn.execute("SELECT * FROM jobs WHERE status = 'doing' AND lease_expires_at < ?"
                            " ORDER BY id", (now,)).fetchall():
        give_up = int(job["attempts"]) >= MAX_ATTEMPTS or _waiting_twin(conn, job)
        conn.execute("UPDATE jobs SET status = ?, lease_owner = NULL, lease_expires_at = NULL,"
                     " error = 'worker lost' WHERE id = ?",
                     ("failed" if give_up else "todo", job["id"]))


def claim(conn: Any, owner: str, lease: float) -> Any | None:
    """Take the next ready job for ``owner`` (jobs of dead workers first go back to waiting)."""
    now = time.time()
    with transaction(conn):
        _release_expired(conn, now)
        row = conn.execute("SELECT * FROM jobs WHERE status = 'todo' AND run_after <= ?"
                           " ORDER BY run_after, id LIMIT 1", (now,)).fetchone()
        if row is None:
            return None
        conn.execute("UPDATE jobs SET status = 'doing', lease_owner = ?, lease_expires_at = ?,"
                     " attempts = attempts + 1 WHERE id = ?", (owner, now + lease, row["id"]))
    return row


def _close(conn: Any, job: Any, owner: str, *, status: str, error: str | None = None,
           retry_in: float | None = None) -> None:
    """Finish a job, or put it back to wait ``retry_in`` seconds (unless a twin waits)."""
    with transaction(conn):
        if retry_in is not None and not _waiting_twin(conn, job):
            conn.execute("UPDATE jobs SET status = 'todo', run_after = ?, lease_owner = NULL,"
                         " lease_expires_at = NULL, error = ? WHERE id = ? AND lease_owner = ?",
                         (time.time() + retry_in, error, job["id"], owner))
            return
        conn.execute("UPDATE jobs SET status = ?, finished_at = ?, error = ?, lease_owner = NULL,"
                     " lease_expires_at = NULL WHERE id = ? AND lease_owner = ?",
                     (status if retry_in is None else "failed", utcnow(), error, job["id"],
                      owner))


def run_job(settings: Any, conn: Any, job: Any, owner: str) -> int:
    """Execute one claimed job under a renewed lease; returns validation runs finished."""
    lease = float(settings.worker_lease_seconds)

    def renew(beat_conn: Any) -> None:
        with transaction(beat_conn):
            beat_conn.execute("UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND"
                              " lease_owner = ? AND status = 'doing'",
                              (time.time() + lease, job["id"], owner))

    try:
        with Heartbeat(settings, renew, lease / 3):
            done = HANDLERS[job["task"]](settings, conn, owner, **json.loads(job["args"]))
    except RetryLater as wait:
        _close(conn, job, owner, status="failed", error=str(wait), retry_in=wait.seconds)
        return 0
    except Exception as exc:  # recorded on the job; the task's own records say what happened
        log.exception("job %s (%s) failed", job["id"], job["task"])
        tries = int(job["attempts"]) + 1
        _close(conn, job, owner, status="failed", error=type(exc).__name__,
               retry_in=None if tries >= MAX_FAILURES else 5.0 * tries)
        return 0
    _close(conn, job, owner, status="succeeded")
    return int(done or 0)


def queue_periodic(settings: Any, conn: Any, now: float) -> None:
    """Queue the sweep and the re-validation for the current slot, once per slot."""
    slot = int(now // settings.worker_sweep_seconds) * settings.worker_sweep_seconds
    defer(conn, "validation.sweep", None, 0, {}, once_key=f"periodic:sweep:{slot}")
    if settings.revalidate_cron:
        from croniter import croniter

        moment = datetime.fromtimestamp(now, UTC)
        due = croniter(settings.revalidate_cron, moment).get_prev(datetime)
        defer(conn, "validation.revalidate", None, 0, {},
              once_key=f"periodic:revalidate:{due.isoformat()}")


def run_worker(settings: Any, *, once: bool, stop: Callable[[], bool] | None,
               owner: str) -> int:
    """The local worker loop (see :func:`portal.jobs.run_worker`)."""
    conn = open_store(settings)
    stopping = threading.Event()
    previous = None
    if not once and threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    finished = 0
    try:
        if once:  # deal with dead workers' runs before draining the queue
            HANDLERS["validation.sweep"](settings, conn, owner)
        while not stopping.is_set() and not (stop and stop()):
            if not once:
                queue_periodic(settings, conn, time.time())
            job = claim(conn, owner, float(settings.worker_lease_seconds))
            if job is None:
                if once:
                    break
                stopping.wait(POLL_SECONDS)
                continue
            finished += run_job(settings, conn, job, owner)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        conn.close()
    return finished
