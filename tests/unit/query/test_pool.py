"""The worker pool: warm locked workers, bounded results, time limits, crash replacement."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import duckdb
import pytest

from portal.errors import Rejected
from portal.query.pool import WorkerPool


@pytest.fixture(scope="module")
def extract(tmp_path_factory):
    path = tmp_path_factory.mktemp("extract") / "e.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE person AS SELECT range AS person_id FROM range(1000)")
    con.close()
    return str(path)


@pytest.fixture(scope="module")
def pool():
    workers = WorkerPool(size=1, memory_mb=2048, threads=1)
    yield workers
    workers.close()


def test_results_are_bounded_to_max_rows_plus_one(pool, extract):
    result = pool.run(extract, "SELECT * FROM range(10000000000)", max_rows=5, time_limit=5)
    assert len(result.rows) == 6
    assert result.columns == ["range"]


def test_connection_is_read_only_and_locked(pool, extract):
    for sql, fragment in [("CREATE TABLE x AS SELECT 1", "read-only"),
                          ("SET enable_external_access = true", "locked"),
                          ("SELECT * FROM read_csv('/etc/passwd')", "")]:
        with pytest.raises(Rejected) as info:
            pool.run(extract, sql, max_rows=5, time_limit=5)
        assert fragment.lower() in info.value.message.lower()
        assert "/etc/passwd" not in info.value.message


def test_time_limit_interrupts_and_the_worker_stays_usable(pool, extract):
    with pytest.raises(Rejected) as info:
        pool.run(extract, "SELECT count(*) FROM range(1000000) a, range(1000000) b",
                 max_rows=5, time_limit=0.5)
    assert info.value.code == "query_timeout"
    assert pool.run(extract, "SELECT count(*) FROM person", 5, 5).rows == [(1000,)]


def test_out_of_memory_is_contained(pool, extract):
    with pytest.raises(Rejected) as info:
        pool.run(extract, "SELECT repeat('x', 2000000000)", max_rows=5, time_limit=10)
    assert info.value.code in ("query_out_of_memory", "query_resources_exceeded")
    assert pool.run(extract, "SELECT 1", 5, 5).rows == [(1,)]


def test_a_crashed_worker_is_replaced_and_the_next_query_works(pool, extract):
    pool.run(extract, "SELECT 1", 5, 5)
    outcome = {}

    def slow():
        try:
            pool.run(extract, "SELECT count(*) FROM range(1000000) a, range(1000000) b", 5, 30)
        except Rejected as exc:
            outcome["code"] = exc.code

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)
    [pid] = pool.worker_pids()
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=30)
    assert outcome["code"] == "query_resources_exceeded"
    assert pool.run(extract, "SELECT 2", 5, 5).rows == [(2,)]
    assert pool.worker_pids() != [pid]


def test_workers_open_extracts_with_the_locked_configuration(pool, extract):
    pool.warm()
    result = pool.run(extract, "SELECT current_setting('enable_external_access'), "
                               "current_setting('lock_configuration'), "
                               "current_setting('temp_directory'), "
                               "current_setting('autoload_known_extensions'), "
                               "current_setting('autoinstall_known_extensions'), "
                               "current_setting('allow_community_extensions'), "
                               "current_setting('threads'), "
                               "current_setting('access_mode')", 5, 5)
    assert result.rows == [(False, True, "", False, False, False, 1, "read_only")]


def test_worker_limits_its_own_address_space(pool, extract):
    pool.warm()
    [pid] = pool.worker_pids()
    limits = Path(f"/proc/{pid}/limits").read_text(encoding="ascii")
    line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
    assert str(2048 * 1024 * 1024) in line


def test_a_worker_that_stops_answering_is_killed_at_the_hard_deadline(pool, extract):
    pool.warm()
    [pid] = pool.worker_pids()
    os.kill(pid, signal.SIGSTOP)  # frozen: the in-worker interrupt can never fire
    try:
        with pytest.raises(Rejected) as info:
            pool.run(extract, "SELECT 1", max_rows=5, time_limit=0.2)
        assert info.value.code == "query_timeout"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert pid not in pool.worker_pids()
    assert pool.run(extract, "SELECT 3", 5, 5).rows == [(3,)]


def test_workers_get_a_clean_environment(pool, extract, monkeypatch):
    pool.warm()
    [pid] = pool.worker_pids()
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    names = {item.split(b"=", 1)[0].decode() for item in environ if item}
    assert names <= {"PATH", "LANG", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "LC_CTYPE"}


def test_workers_have_no_network_where_the_os_allows_it(pool, extract):
    from portal.query.pool import network_isolation_prefix
    from tests.conftest import require_or_skip

    require_or_skip(bool(network_isolation_prefix()), "PORTAL_REQUIRE_ISOLATION",
                    "network namespaces are not available here")
    pool.warm()
    [pid] = pool.worker_pids()
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert pool.run(extract, "SELECT count(*) FROM person", 5, 5).rows == [(1000,)]


def test_a_missing_extract_is_a_clean_failure_without_its_path(pool, extract, tmp_path):
    missing = str(tmp_path / "gone.duckdb")
    with pytest.raises(Rejected) as info:
        pool.run(missing, "SELECT 1", 5, 5)
    assert info.value.code == "query_failed"
    assert str(tmp_path) not in info.value.message
    assert pool.run(extract, "SELECT 1", 5, 5).rows == [(1,)]
