"""The job engine on PostgreSQL: procrastinate, sharing the store's database.

- Jobs are deferred on the store connection inside the caller's transaction (procrastinate's
  ``connection=`` option), under a savepoint so that a job already waiting with the same
  queueing lock leaves the caller's transaction intact.
- ``portal worker`` is a procrastinate worker: it listens for new jobs (LISTEN/NOTIFY), sends
  heartbeats, retries tasks that raise :class:`portal.jobs.RetryLater` or lose the store, and
  defers the periodic tasks (sweep every ``worker_sweep_seconds``, re-validation on
  ``revalidate_cron``) once per slot across all workers.
- The sweep also hands jobs of stalled workers (no heartbeat) back to the queue, the recovery
  procrastinate documents for workers that died.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import procrastinate
from procrastinate import exceptions as pq_exceptions
from procrastinate import sql as pq_sql

from portal.jobs import RetryLater
from portal.jobs.tasks import HANDLERS, QUEUES
from portal.store.db import OperationalError, connect, utcnow

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 2.0
STALLED_AFTER_SECONDS = 10.0
RETRY = procrastinate.RetryStrategy(max_attempts=50, wait=2,
                                    retry_exceptions={RetryLater, OperationalError})
_apps: dict[tuple[str, int, str], procrastinate.App] = {}
_state = threading.local()


class _Worker:
    """What the task functions of a running worker need."""

    settings: Any = None
    owner: str = ""
    finished = 0
    lock = threading.Lock()


def _store(settings: Any) -> Any:
    """This thread's store connection (one per worker thread, reopened when lost)."""
    target, conn = getattr(_state, "store", (None, None))
    if conn is None or conn.closed or target != settings.store_target:
        if conn is not None and not conn.closed:
            conn.close()
        conn = connect(settings.store_target, settings)
        _state.store = (settings.store_target, conn)
    return conn


def _close_store() -> None:
    _, conn = getattr(_state, "store", (None, None))
    if conn is not None and not conn.closed:
        conn.close()
    _state.store = (None, None)


def _task_function(name: str) -> Callable[..., None]:
    def run(**kwargs: Any) -> None:
        kwargs.pop("timestamp", None)  # given to periodic tasks
        done = HANDLERS[name](_Worker.settings, _store(_Worker.settings), _Worker.owner,
                              **kwargs)
        with _Worker.lock:
            _Worker.finished += int(done or 0)

    run.__name__ = name.replace(".", "_")
    return run


def _with_tasks(app: procrastinate.App) -> dict[str, Any]:
    return {name: app.task(name=name, queue=QUEUES[name], retry=RETRY,
                           pass_context=False)(_task_function(name)) for name in HANDLERS}


def defer_app(url: str) -> procrastinate.App:
    """The app used to defer jobs and run procrastinate's queries on a store connection we
    pass in. Its connector is synchronous and never opened: everything it runs goes through
    the given connection (a worker's own app, once open, would route them to its event loop)."""
    key = ("defer", url, 0, "")
    if key not in _apps:
        app = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=url))
        _with_tasks(app)
        _apps[key] = app
    return _apps[key]


def worker_app(url: str, sweep_seconds: int, revalidate_cron: str) -> procrastinate.App:
    """The app a worker runs: the tasks plus the periodic sweep and re-validation."""
    key = ("worker", url, sweep_seconds, revalidate_cron)
    if key not in _apps:
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(
            conninfo=url, min_size=1, max_size=4))
        tasks = _with_tasks(app)
        app.periodic(cron=f"*/{sweep_seconds} * * * * *",
                     periodic_id="sweep")(tasks["validation.sweep"])
        if revalidate_cron:
            app.periodic(cron=revalidate_cron,
                         periodic_id="revalidate")(tasks["validation.revalidate"])
        _apps[key] = app
    return _apps[key]


def defer(conn: Any, task: str, key: str | None, delay: float, args: dict[str, Any]) -> bool:
    """Defer on the store connection, in the caller's transaction (see module doc)."""
    options: dict[str, Any] = {"connection": conn.raw, "queueing_lock": key}
    if delay:
        options["schedule_in"] = {"seconds": int(delay) or 1}
    deferrer = defer_app(conn.url).configure_task(task, **options)
    inside = conn.in_transaction
    if inside:
        conn.execute("SAVEPOINT portal_defer")
    try:
        deferrer.defer(**json.loads(json.dumps(args)))
    except pq_exceptions.AlreadyEnqueued:
        if inside:
            conn.execute("ROLLBACK TO SAVEPOINT portal_defer")
        return False
    if inside:
        conn.execute("RELEASE SAVEPOINT portal_defer")
    return True


def retry_stalled_jobs(conn: Any) -> list[int]:
    """Jobs left ``doing`` by workers without a recent heartbeat go back to ``todo``."""
    sync = defer_app(conn.url).connector
    stalled = sync.execute_query_all_with_connection(
        conn.raw, query=pq_sql.queries["select_stalled_jobs_by_heartbeat"], queue=None,
        task_name=None, seconds_since_heartbeat=STALLED_AFTER_SECONDS)
    retried = []
    for job in stalled:
        try:
            sync.execute_query_all_with_connection(
                conn.raw, query=pq_sql.queries["retry_job"], job_id=job["id"],
                retry_at=datetime.now(UTC), new_priority=None, new_queue_name=None,
                new_lock=None)
        except pq_exceptions.UniqueViolation:  # the same work already waits in another job
            sync.execute_query_all_with_connection(
                conn.raw, query=pq_sql.queries["finish_job"], job_id=job["id"],
                status="failed", delete_job=False)
        retried.append(int(job["id"]))
    if retried:
        log.warning("jobs %s of stalled workers were queued again at %s", retried, utcnow())
    return retried


def run_worker(settings: Any, *, once: bool, stop: Callable[[], bool] | None,
               owner: str, queues: list[str] | None = None) -> int:
    """A procrastinate worker on the store database (see :func:`portal.jobs.run_worker`).

    ``stop`` is not polled here: a worker that is not ``once`` stops on SIGINT/SIGTERM."""
    del stop
    _Worker.settings, _Worker.owner, _Worker.finished = settings, owner, 0
    app = worker_app(settings.database_url, settings.worker_sweep_seconds,
                     settings.revalidate_cron)
    if once:  # deal with dead workers' runs, then drain what is ready
        HANDLERS["validation.sweep"](settings, _store(settings), owner)
        _close_store()
    options = {"queues": queues, "name": owner, "concurrency": 1, "wait": not once,
               "update_heartbeat_interval": HEARTBEAT_SECONDS,
               "stalled_worker_timeout": STALLED_AFTER_SECONDS,
               "fetch_job_polling_interval": 1.0, "listen_notify": True,
               "install_signal_handlers": not once}
    _run_outside_event_loop(lambda: app.run_worker(**options))
    return _Worker.finished


def _run_outside_event_loop(work: Callable[[], None]) -> None:
    """procrastinate's worker runs its own event loop; a caller already inside one (a server,
    a notebook) gets the worker on a thread of its own, errors passed back."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        work()
        return
    failure: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # re-raised in the caller below
            failure.append(exc)

    thread = threading.Thread(target=target, name="job-worker")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
