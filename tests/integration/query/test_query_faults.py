"""Governed queries under faults, with real processes, on both store engines: a SQL worker killed
mid-query, and the store's write lock held by another process for longer than the busy timeout
while queries run. Nothing is lost: every attempt ends with its query_runs row and exactly one
audit event, and the chain still verifies."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import signal
import threading
import time

import pytest

from portal import audit
from portal.errors import PortalError, Rejected
from portal.query.pool import WorkerPool
from portal.services import query as q
from portal.services.context import Context
from portal.store.db import connect, transaction
from tests.factories_query import make_analyst, make_omop_release, settings_with_policies
from tests.store_engines import ENGINES

SLOW_SQL = "SELECT count(*) FROM range(1000000) a, range(1000000) b"  # never ends by itself
ROOMY = {"per_minute: 30": "per_minute: 1000"}


@pytest.fixture(params=ENGINES)
def store_engine(request) -> str:
    return request.param


@pytest.fixture
def omop(ctx, tmp_path):
    roomy = Context(settings_with_policies(ctx.settings, tmp_path / "policies", ROOMY), ctx.conn)
    make_omop_release(roomy)
    return roomy


@pytest.fixture
def pool():
    workers = WorkerPool(size=2, memory_mb=2048, threads=1,
                         allow_unisolated=os.environ.get("PORTAL_REQUIRE_ISOLATION") != "1")
    yield workers
    workers.close()


def _attempts(ctx: Context, query_id: str | None = None) -> list[audit.AuditEvent]:
    found = audit.list_events(ctx.conn, action="query.run", limit=10_000)
    return [e for e in found if query_id is None or e.details.get("query_id") == query_id]


def _run_row(ctx: Context, query_id: str):
    return ctx.conn.execute("SELECT status, code FROM query_runs WHERE query_id = ?",
                            (query_id,)).fetchone()


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_worker_killed_mid_query_fails_that_attempt_once_and_the_next_query_runs(omop, pool):
    analyst = make_analyst(omop)
    outcome: dict = {}

    def slow() -> None:
        try:
            q.run_query(Context(omop.settings, connect(omop.settings.store_target,
                                                        omop.settings)),
                        analyst, "eunomia", SLOW_SQL, pool=pool)
        except PortalError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=slow)
    thread.start()
    _wait_for(lambda: omop.conn.execute(
        "SELECT count(*) FROM query_runs WHERE status = 'running'").fetchone()[0] == 1)
    _wait_for(lambda: len(pool.worker_pids()) == 1)
    [pid] = pool.worker_pids()
    time.sleep(0.3)  # well inside DuckDB's cross join
    os.kill(pid, signal.SIGKILL)
    thread.join(60)
    assert isinstance(outcome["error"], Rejected)
    assert outcome["error"].code == "query_resources_exceeded"
    [event] = _attempts(omop)
    assert (event.decision, event.reason) == ("rejected", "query_resources_exceeded")
    assert event.details["sql"] == SLOW_SQL and event.details["rows_returned"] == 0
    assert tuple(_run_row(omop, event.details["query_id"])) == ("rejected",
                                                                "query_resources_exceeded")
    after = q.run_query(omop, analyst, "eunomia", "SELECT count(*) FROM person", pool=pool)
    assert after.rows == [[200]] and pool.worker_pids() != [pid]
    assert len(_attempts(omop)) == 2 and audit.verify(omop.conn).ok


def _hold_write_lock_while_a_query_runs(target: str, settings, seconds: float, held,
                                        ready) -> None:
    """Another process: once a query is running, take the store's write lock and keep it for
    ``seconds`` (several busy timeouts); record when it was taken and let go."""
    conn = connect(target, settings)
    ready.set()
    deadline = time.monotonic() + 60
    while not conn.execute("SELECT count(*) FROM query_runs WHERE status = 'running'"
                           ).fetchone()[0]:
        if time.monotonic() > deadline:
            return
        time.sleep(0.01)
    with transaction(conn):
        held[0] = time.time()
        time.sleep(seconds)
        held[1] = time.time()
    conn.close()


def test_a_store_locked_past_the_busy_timeout_loses_no_result_and_no_audit_event(omop, pool):
    """The lock is taken while a query runs (so its result, its query_runs row and its event
    must wait to commit) and kept for six busy timeouts; other users' attempts arrive meanwhile:
    allowed, refused for a missing grant, rejected by preflight. Each waits, none fails."""
    settings = dataclasses.replace(omop.settings, store_busy_timeout_ms=250,
                                   store_lock_wait_seconds=60)
    analyst = make_analyst(omop)
    other = make_analyst(omop, team="beta-bio", tier=None)
    q.run_query(omop, analyst, "eunomia", "SELECT 1", pool=pool)  # a warm worker
    spawn = mp.get_context("spawn")
    held, ready = spawn.Array("d", [0.0, 0.0]), spawn.Event()
    holder = spawn.Process(target=_hold_write_lock_while_a_query_runs,
                           args=(settings.store_target, settings, 1.5, held, ready))
    holder.start()
    assert ready.wait(60)
    finished: dict[str, object] = {}

    def attempt(name: str, who, sql: str, delay: float) -> None:
        time.sleep(delay)
        ctx = Context(settings, connect(settings.store_target, settings))
        try:
            finished[name] = q.run_query(ctx, who, "eunomia", sql, pool=pool)
        except PortalError as exc:
            finished[name] = exc
        finally:
            finished[name + "_at"] = time.time()
            ctx.close()

    work = [("running", analyst, "SELECT count(*) FROM range(3000000) a, person", 0.0),
            ("allowed", analyst, "SELECT count(*) FROM person", 0.4),
            ("no_grant", other, "SELECT count(*) FROM person", 0.4),
            ("bad_sql", analyst, "DELETE FROM person", 0.4)]
    threads = [threading.Thread(target=attempt, args=w) for w in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    holder.join(60)
    assert holder.exitcode == 0 and held[0] > 0, "the lock was never taken during the query"
    assert all(finished[f"{name}_at"] >= held[1] for name, *_ in work)  # they all waited
    assert finished["running"].rows == [[600_000_000]]
    assert finished["allowed"].rows == [[200]]
    assert finished["no_grant"].code == "no_grant"
    assert finished["bad_sql"].code == "statement_not_allowed"
    events = _attempts(omop)
    assert len(events) == 5  # the warm-up and the four attempts, one event each
    by_id = {e.details["query_id"]: e for e in events}
    for name, _who, _sql, _delay in work:
        shown = finished[name]
        query_id = getattr(shown, "query_id", None)
        if query_id:
            assert by_id[query_id].decision == "allowed"
            assert tuple(_run_row(omop, query_id)) == ("allowed", None)
    assert sorted(e.reason or "" for e in events) == ["", "", "", "no_grant",
                                                      "statement_not_allowed"]
    assert omop.conn.execute("SELECT count(*) FROM query_runs WHERE status = 'running'"
                             ).fetchone()[0] == 0
    assert audit.verify(omop.conn).ok


def test_a_query_left_running_by_a_dead_process_is_closed_and_audited_once(omop, pool):
    """A portal process killed mid-query writes no event; the periodic sweep closes its row as
    failed (query_abandoned) with the event, once, and leaves recent running rows alone."""
    from datetime import UTC, datetime, timedelta

    from portal.jobs import tasks

    analyst = make_analyst(omop)
    proc = mp.get_context("spawn").Process(target=_query_then_die,
                                           args=(omop.settings, analyst, pool.allow_unisolated))
    proc.start()
    _wait_for(lambda: omop.conn.execute(
        "SELECT count(*) FROM query_runs WHERE status = 'running'").fetchone()[0] == 1)
    os.kill(proc.pid, signal.SIGKILL)  # its jailed worker dies with it
    proc.join(30)
    assert _attempts(omop) == []
    assert q.close_abandoned_runs(omop) == 0  # too recent: it may still be running elsewhere
    later = datetime.now(UTC) + q.ABANDONED_AFTER + timedelta(minutes=1)
    assert q.close_abandoned_runs(omop, now=later) == 1
    [event] = _attempts(omop)
    assert (event.decision, event.reason, event.actor) == ("failed", "query_abandoned",
                                                           analyst.email)
    assert tuple(_run_row(omop, event.details["query_id"])) == ("failed", "query_abandoned")
    tasks.sweep(omop.settings, omop.conn, "test")
    assert len(_attempts(omop)) == 1 and audit.verify(omop.conn).ok


def _query_then_die(settings, analyst, allow_unisolated: bool) -> None:
    ctx = Context(settings, connect(settings.store_target, settings))
    workers = WorkerPool(size=1, memory_mb=2048, threads=1, allow_unisolated=allow_unisolated)
    q.run_query(ctx, analyst, "eunomia", SLOW_SQL, pool=workers)
