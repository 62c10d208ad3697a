"""The worker pool: warm locked workers in jails (observed from the host), one extract per
worker, bounded results, time limits, crash replacement, refusal without isolation."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
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
    pool.warm(extract)
    result = pool.run(extract, "SELECT current_setting('enable_external_access'), "
                               "current_setting('lock_configuration'), "
                               "current_setting('temp_directory'), "
                               "current_setting('autoload_known_extensions'), "
                               "current_setting('autoinstall_known_extensions'), "
                               "current_setting('allow_community_extensions'), "
                               "current_setting('threads'), "
                               "current_setting('access_mode')", 5, 5)
    assert result.rows == [(False, True, "", False, False, False, 1, "read_only")]


@pytest.mark.parametrize("sql", ["SELECT * FROM read_blob('{path}')",
                                 "SELECT * FROM read_text('{path}')",
                                 "SELECT * FROM read_csv('{path}')"])
def test_a_worker_cannot_read_even_its_own_extract_as_a_file(pool, extract, sql):
    """DuckDB allows reading an attached database's own file as a blob even with external
    access off; the worker disables the local file system once the extract is open."""
    from portal.query.pool import EXTRACT_IN_JAIL

    for path in (EXTRACT_IN_JAIL, extract):
        with pytest.raises(Rejected) as info:
            pool.run(extract, sql.format(path=path), max_rows=5, time_limit=5)
        assert (info.value.code, info.value.context["kind"]) == ("query_failed",
                                                                "PermissionException")


def test_worker_limits_its_own_address_space(pool, extract):
    pool.warm(extract)
    [pid] = pool.worker_pids()
    limits = Path(f"/proc/{pid}/limits").read_text(encoding="ascii")
    line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
    assert str(2048 * 1024 * 1024) in line


def test_a_worker_started_by_a_thread_that_ended_keeps_serving(extract):
    """A server starts workers from request threads that end (Streamlit reruns); a jail tied
    to the thread that forked it died with it and the next query failed."""
    workers = WorkerPool(size=1, memory_mb=2048, threads=1)
    try:
        starter = threading.Thread(target=workers.warm, args=(extract,))
        starter.start()
        starter.join()
        [pid] = workers.worker_pids()
        time.sleep(0.5)
        assert workers.run(extract, "SELECT count(*) FROM person", 5, 5).rows == [(1000,)]
        assert workers.worker_pids() == [pid] and workers.replaced == 0
    finally:
        workers.close()


def test_a_worker_leaves_its_address_space_to_duckdb(pool, extract):
    """Arrow's default allocator once reserved 1 GiB of address space at the first result
    frame, leaving DuckDB almost nothing under the worker's RLIMIT_AS (small aggregates then
    failed as out of memory). Most of the limit stays free after results have been sent."""
    for _ in range(3):
        pool.run(extract, "SELECT person_id % 7 AS g, count(*) FROM person GROUP BY 1", 50, 5)
    [pid] = pool.worker_pids()
    status = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    peak_kb = int(status["VmPeak"].split()[0])
    assert peak_kb < 0.75 * 2048 * 1024


def test_a_worker_that_stops_answering_is_killed_at_the_hard_deadline(pool, extract):
    pool.warm(extract)
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


def test_workers_get_a_clean_environment(pool, extract):
    pool.warm(extract)
    [pid] = pool.worker_pids()
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    names = {item.split(b"=", 1)[0].decode() for item in environ if item}
    assert names <= {"PATH", "LANG", "PYTHONDONTWRITEBYTECODE", "LC_CTYPE", "PWD"}


def _need_isolation():
    from portal import isolation
    from tests.conftest import require_or_skip

    require_or_skip(isolation.available(), "PORTAL_REQUIRE_ISOLATION",
                    "isolation (bubblewrap, setpriv, prlimit, python3-seccomp, root) is not "
                    "available here")


def test_the_running_worker_is_jailed_as_its_own_unprivileged_uid(pool, extract):
    from portal.query.extracts import WORKER_GID
    from tests import jails

    _need_isolation()
    pool.warm(extract)
    [pid] = pool.worker_pids()
    seen = jails.view(pid)
    mine = jails.own_namespaces()
    assert [n for n in jails.NAMESPACES if seen.namespaces[n] == mine[n]] == []
    uid = seen.status["Uid"].split()[0]
    assert int(uid) >= 100_000 and seen.status["Uid"] == " ".join([uid] * 4)
    assert seen.status["Gid"] == " ".join([str(WORKER_GID)] * 4)
    assert seen.status["Groups"] == ""
    assert {seen.status[k] for k in ("CapPrm", "CapEff", "CapBnd")} == {"0" * 16}
    assert (seen.status["NoNewPrivs"], seen.status["Seccomp"]) == ("1", "2")
    assert seen.limits["Max file size"] == "0" and seen.limits["Max core file size"] == "0"
    assert pool.run(extract, "SELECT count(*) FROM person", 5, 5).rows == [(1000,)]


def test_a_worker_sees_its_extract_and_nothing_else_of_the_home(tmp_path):
    """Two extracts side by side in one home: the worker for one cannot see the other, the
    store or the releases, whatever the SQL could do."""
    import sys

    from tests import jails

    _need_isolation()
    home = tmp_path / "home"
    (home / "extracts").mkdir(parents=True)
    (home / "releases").mkdir()
    (home / "releases" / "holdout.duckdb").write_text("held-out rows")
    (home / "portal.db").write_text("the store")
    mine, other = home / "extracts" / "mine.duckdb", home / "extracts" / "other.duckdb"
    for path in (mine, other):
        con = duckdb.connect(str(path))
        con.execute("CREATE TABLE person AS SELECT range AS person_id FROM range(10)")
        con.close()
    workers = WorkerPool(size=1, memory_mb=2048, threads=1, hidden=(home,))
    try:
        workers.warm(mine)
        [pid] = workers.worker_pids()
        files = jails.view(pid).files
    finally:
        workers.close()
    assert "/data/extract.duckdb" in files
    assert not [p for p in files if p.startswith(str(home)) or p.endswith("other.duckdb")]
    assert not any(p.startswith(("/etc", "/home", "/var", "/srv")) for p in files)
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site = f"{Path(sys.prefix).resolve()}/lib/{version}/site-packages/"
    visible = {p[len(site):].split("/")[0] for p in files if p.startswith(site)}
    assert "duckdb" in visible
    assert not visible & {"portal", "onnxruntime", "numpy", "pyarrow", "streamlit", "pip"}
    assert stat.S_IMODE(mine.stat().st_mode) == 0o640  # service and the workers' group only


def test_workers_are_bound_to_one_extract_and_the_least_recently_used_makes_room(tmp_path):
    paths = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.duckdb"
        con = duckdb.connect(str(path))
        con.execute(f"CREATE TABLE t AS SELECT '{name}' AS which")
        con.close()
        paths.append(str(path))
    workers = WorkerPool(size=1, memory_mb=2048, threads=1)
    try:
        assert workers.run(paths[0], "SELECT which FROM t", 5, 5).rows == [("a",)]
        [first] = workers.worker_pids()
        assert workers.run(paths[1], "SELECT which FROM t", 5, 5).rows == [("b",)]
        [second] = workers.worker_pids()
        assert second != first and not os.path.exists(f"/proc/{first}")
        assert workers.run(paths[0], "SELECT which FROM t", 5, 5).rows == [("a",)]
    finally:
        workers.close()


@pytest.mark.parametrize("missing", ["bwrap", "setpriv", "prlimit"])
def test_without_isolation_the_pool_refuses_loudly(extract, monkeypatch, tmp_path, missing):
    from portal.errors import InternalError
    from portal.isolation import launcher

    monkeypatch.setitem(launcher.TOOLS, missing, str(tmp_path / "not-installed"))
    workers = WorkerPool(size=1, memory_mb=2048, threads=1)
    try:
        with pytest.raises(InternalError) as info:
            workers.run(extract, "SELECT 1", 5, 5)
        assert info.value.code == "isolation_unavailable"
        assert workers.worker_pids() == []
    finally:
        workers.close()


def test_the_development_setting_runs_plain_workers_without_isolation(extract, monkeypatch,
                                                                     tmp_path):
    from portal.isolation import launcher

    monkeypatch.setitem(launcher.TOOLS, "bwrap", str(tmp_path / "not-installed"))
    workers = WorkerPool(size=1, memory_mb=2048, threads=1, allow_unisolated=True)
    try:
        assert workers.run(extract, "SELECT count(*) FROM person", 5, 5).rows == [(1000,)]
        [pid] = workers.worker_pids()
        assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    finally:
        workers.close()


def test_the_pool_refuses_when_the_home_cannot_be_hidden(extract):
    import sys

    from portal.errors import InternalError

    _need_isolation()
    workers = WorkerPool(size=1, memory_mb=2048, threads=1, hidden=(Path(sys.prefix),))
    try:
        with pytest.raises(InternalError) as info:
            workers.run(extract, "SELECT 1", 5, 5)
        assert info.value.code == "isolation_unavailable"
    finally:
        workers.close()


def test_a_missing_extract_is_a_clean_failure_without_its_path(pool, extract, tmp_path):
    missing = str(tmp_path / "gone.duckdb")
    with pytest.raises(Rejected) as info:
        pool.run(missing, "SELECT 1", 5, 5)
    assert info.value.code == "query_failed"
    assert str(tmp_path) not in info.value.message
    assert pool.run(extract, "SELECT 1", 5, 5).rows == [(1,)]


def test_result_values_come_back_as_plain_json_values(pool, extract):
    """Rows travel as JSON (no pyarrow on either side): each DuckDB type arrives in the form
    the service shows, NULL stays None and the column types are DuckDB's."""
    result = pool.run(extract, "SELECT 12345678901234567890::HUGEINT AS h, 1.50::DECIMAL(10,2) AS d,"
                               " DATE '2020-01-02' AS day, 'x'::BLOB AS b, [1, 2] AS l,"
                               " {'a': 'é'} AS s, 'nan'::DOUBLE AS n, NULL::INTEGER AS z",
                      max_rows=5, time_limit=5)
    assert result.columns == ["h", "d", "day", "b", "l", "s", "n", "z"]
    assert result.types[:3] == ["HUGEINT", "DECIMAL(10,2)", "DATE"]
    [row] = result.rows
    assert row[:6] == (12345678901234567890, 1.5, "2020-01-02", "78", [1, 2], {"a": "é"})
    assert row[6] != row[6] and row[7] is None  # NaN, NULL


@pytest.mark.parametrize("program", ["import time; time.sleep(60)",  # never says ready
                                     "import sys; sys.stdout.write('garbage!'); sys.stdout.flush();"
                                     " import time; time.sleep(60)"])
def test_a_worker_that_fails_to_start_is_killed(monkeypatch, extract, program):
    import sys

    from portal import isolation
    from portal.query import pool as pool_module

    monkeypatch.setattr(pool_module, "START_TIMEOUT_SECONDS", 1.0)
    start = isolation.Launch([sys.executable, "-c", program], ())
    started: list = []
    real_spawn = isolation.spawn
    monkeypatch.setattr(pool_module.isolation, "spawn",
                        lambda *a, **k: started.append(real_spawn(*a, **k)) or started[-1])
    with pytest.raises(pool_module.WorkerDied):
        pool_module.WorkerProcess(extract, start)
    [proc] = started
    assert proc.poll() is not None  # killed, not left behind
