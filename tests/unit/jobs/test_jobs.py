"""The job interface on both store engines: jobs commit with the caller's transaction, a key
allows one waiting job, and the local engine claims a job once and takes back a dead worker's."""

from __future__ import annotations

import threading

import pytest

from portal import jobs
from portal.jobs import engine_local
from portal.store.db import engine_of, transaction
from tests.store_engines import ENGINES


@pytest.fixture(params=ENGINES)
def store_engine(request) -> str:
    return request.param


def _waiting(conn, task: str) -> int:
    if engine_of(conn) == "postgresql":
        sql = "SELECT count(*) FROM procrastinate_jobs WHERE task_name = ? AND status = 'todo'"
    else:
        sql = "SELECT count(*) FROM jobs WHERE task = ? AND status = 'todo'"
    return conn.execute(sql, (task,)).fetchone()[0]


def test_a_job_deferred_in_a_rolled_back_transaction_is_never_queued(ctx):
    with pytest.raises(RuntimeError), transaction(ctx.conn):
        assert jobs.defer(ctx.conn, "validation.run", key="run:1", run_id=1)
        raise RuntimeError("the submission failed")
    assert _waiting(ctx.conn, "validation.run") == 0


def test_one_waiting_job_per_key_and_the_transaction_survives_a_duplicate(ctx):
    with transaction(ctx.conn):
        assert jobs.defer(ctx.conn, "validation.run", key="run:7", run_id=7)
        assert not jobs.defer(ctx.conn, "validation.run", key="run:7", run_id=7)
        assert jobs.defer(ctx.conn, "validation.run", key="run:8", run_id=8)
        ctx.conn.execute("INSERT INTO teams (slug, name, created_at) VALUES ('t', 't', 'now')")
    assert _waiting(ctx.conn, "validation.run") == 2
    assert ctx.conn.execute("SELECT count(*) FROM teams").fetchone()[0] == 1


def test_unknown_tasks_are_refused(ctx):
    with pytest.raises(ValueError):
        jobs.defer(ctx.conn, "shell.run", cmd="rm -rf /")


@pytest.mark.parametrize("store_engine", ["sqlite"])
def test_local_engine_claims_once_and_takes_back_a_dead_workers_job(ctx):
    jobs.defer(ctx.conn, "validation.sweep")
    first = engine_local.claim(ctx.conn, "alive", 60)
    assert first is not None and engine_local.claim(ctx.conn, "other", 60) is None
    ctx.conn.execute("UPDATE jobs SET lease_expires_at = 0 WHERE id = ?", (first["id"],))
    again = engine_local.claim(ctx.conn, "other", 60)
    assert again["id"] == first["id"]
    row = ctx.conn.execute("SELECT status, lease_owner, attempts FROM jobs WHERE id = ?",
                           (first["id"],)).fetchone()
    assert tuple(row) == ("doing", "other", 2)


@pytest.mark.parametrize("store_engine", ["postgresql"])
def test_tasks_of_a_running_postgresql_worker_can_defer_and_sweep(ctx):
    """Inside a worker the app's connector is open on an event loop; deferring and the stalled
    job recovery must still run on the store connection they are given."""
    import asyncio

    from portal.jobs import engine_pg

    app = engine_pg.worker_app(ctx.settings.database_url, ctx.settings.worker_sweep_seconds,
                               ctx.settings.revalidate_cron)

    def task_body() -> None:
        assert jobs.defer(ctx.conn, "validation.run", key="run:3", run_id=3)
        engine_pg.retry_stalled_jobs(ctx.conn)

    async def as_a_worker() -> None:
        async with app.open_async():
            await asyncio.to_thread(task_body)

    # On a thread of its own: a browser test earlier in the session may have left an event loop
    # running on the main thread, where asyncio.run() refuses to start.
    failures: list[BaseException] = []

    def on_its_own_loop() -> None:
        try:
            asyncio.run(as_a_worker())
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    runner = threading.Thread(target=on_its_own_loop)
    runner.start()
    runner.join(120)
    assert not runner.is_alive() and failures == []
    assert _waiting(ctx.conn, "validation.run") == 1
