"""Background work on one job interface, whatever the store engine.

Validation runs, re-runs (after a new release, or asked by staff), extract builds and the
periodic sweep and re-validation are *jobs*: a task name and JSON arguments, deferred inside the
caller's store transaction (so a run and its job commit together) and executed by workers
started with ``portal worker`` on any machine that reaches the store and the shared storage.

- PostgreSQL: the maintained job engine procrastinate (:mod:`portal.jobs.engine_pg`): its
  queueing locks, retries, worker heartbeats, stalled-job recovery and periodic tasks.
- SQLite (the embedded default): the same tasks on a small jobs table claimed by local worker
  processes with a renewable lease (:mod:`portal.jobs.engine_local`).

Delivery is at least once on both: a job whose worker died is run again. Exactly-once results
come from the store, not the queue: a validation run is finished only by the holder of its
lease (:func:`sandbox.worker.finish`), so a repeated job finds the run done and does nothing.
See docs/decisions/0008-job-engine.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portal.store.db import engine_of


class RetryLater(Exception):  # noqa: N818 - a signal to the job engine, not an error
    """Raised by a task that cannot proceed yet (e.g. its run is still leased by a live worker);
    the job is tried again after a delay."""

    def __init__(self, reason: str, seconds: float = 5.0):
        super().__init__(reason)
        self.seconds = seconds


def task_names() -> tuple[str, ...]:
    from portal.jobs.tasks import HANDLERS

    return tuple(HANDLERS)


def defer(conn: Any, task: str, *, key: str | None = None, delay_seconds: float = 0.0,
          **args: Any) -> bool:
    """Queue ``task(**args)``, joining the caller's transaction when there is one.

    ``key``: at most one *waiting* job per key (a second defer returns False and queues
    nothing). ``args`` must be JSON values. Raises ValueError for an unknown task."""
    if task not in task_names():
        raise ValueError(f"unknown job task {task!r}")
    if engine_of(conn) == "postgresql":
        from portal.jobs import engine_pg

        return engine_pg.defer(conn, task, key, delay_seconds, args)
    from portal.jobs import engine_local

    return engine_local.defer(conn, task, key, delay_seconds, args)


def run_worker(settings: Any, *, once: bool = False, stop: Callable[[], bool] | None = None,
               name: str | None = None) -> int:
    """Execute jobs until ``stop()`` is true or the process is signalled (``once``: until no
    job is ready). Returns how many validation runs this worker finished.

    Raises sqlite3.OperationalError when the store cannot be reached."""
    from portal.jobs.tasks import worker_name

    owner = name or worker_name()
    if settings.database_url:
        from portal.jobs import engine_pg

        return engine_pg.run_worker(settings, once=once, stop=stop, owner=owner)
    from portal.jobs import engine_local

    return engine_local.run_worker(settings, once=once, stop=stop, owner=owner)
