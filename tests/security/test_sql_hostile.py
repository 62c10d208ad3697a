"""Hostile SQL (issue 3's list): each is refused or contained, with a clear code, nothing
leaked in the message, one audit event, and the next query still works."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from portal import audit
from portal.errors import PortalError, Rejected
from portal.services import query as q
from portal.services.context import Context
from tests.factories_query import fast_limits, make_analyst, make_omop_release

REFUSED = [
    # reading files, globbing, paths and URLs as tables
    ("SELECT * FROM read_csv('/etc/passwd')", {"function_not_allowed"}),
    ("SELECT * FROM read_text('/etc/hostname')", {"function_not_allowed"}),
    ("SELECT * FROM read_blob('/proc/self/environ')", {"function_not_allowed"}),
    ("SELECT * FROM glob('/**')", {"function_not_allowed"}),
    ("SELECT * FROM '/etc/passwd'", {"unknown_table"}),
    ("SELECT * FROM parquet_metadata('/tmp/x.parquet')", {"function_not_allowed"}),
    ("SELECT * FROM read_csv('https://example.com/data.csv')", {"function_not_allowed"}),
    ("SELECT * FROM 's3://bucket/raw.parquet'", {"unknown_table"}),
    # catalog and file-system statements
    ("ATTACH '/tmp/other.duckdb' AS o", {"statement_not_allowed"}),
    ("DETACH o", {"statement_not_allowed"}),
    ("COPY person TO '/tmp/person.csv'", {"statement_not_allowed"}),
    ("EXPORT DATABASE '/tmp/everything'", {"statement_not_allowed"}),
    ("INSTALL httpfs", {"statement_not_allowed"}),
    ("LOAD httpfs", {"statement_not_allowed"}),
    ("SET enable_external_access = true", {"statement_not_allowed"}),
    ("RESET lock_configuration", {"statement_not_allowed"}),
    ("PRAGMA show_tables", {"statement_not_allowed"}),
    ("CREATE SECRET (TYPE s3, KEY_ID 'k', SECRET 's')", {"statement_not_allowed"}),
    ("SELECT * FROM duckdb_secrets()", {"function_not_allowed"}),
    # several statements, writes
    ("SELECT 1; SELECT 2", {"multiple_statements"}),
    ("SELECT 1; DELETE FROM person", {"statement_not_allowed"}),
    ("INSERT INTO person VALUES (1, 2, 3, 4, 5)", {"statement_not_allowed"}),
    ("CREATE TABLE copy AS SELECT * FROM person", {"statement_not_allowed"}),
    ("UPDATE person SET year_of_birth = 0", {"statement_not_allowed"}),
    # dynamic SQL
    ("SELECT * FROM query('SELECT * FROM person')", {"function_not_allowed"}),
    ("SELECT * FROM query_table('person')", {"function_not_allowed"}),
    ("SELECT json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
     {"function_not_allowed"}),
    # metadata that reveals paths or policy text
    ("SELECT * FROM duckdb_settings()", {"function_not_allowed"}),
    ("SELECT * FROM duckdb_databases()", {"function_not_allowed"}),
    ("SELECT * FROM duckdb_views()", {"function_not_allowed"}),
    ("SELECT current_setting('temp_directory')", {"function_not_allowed"}),
    ("SHOW DATABASES", {"statement_not_allowed"}),
    ("SELECT * FROM information_schema.tables", {"unknown_table"}),
    # the held-out partition and tables outside the grant
    ("SELECT * FROM holdout.person", {"unknown_table"}),
    ("SELECT * FROM person_holdout", {"unknown_table"}),
    ("SELECT * FROM drug_exposure", {"unknown_table"}),
    # dropped columns, also as oracles through WHERE / ORDER BY / JOIN / count(*): a governed
    # message, never DuckDB's own "Binder Error"
    ("SELECT person_source_value FROM person", {"column_not_in_extract"}),
    ("SELECT count(*) FROM person WHERE person_source_value LIKE 'SRC-1%'",
     {"column_not_in_extract"}),
    ("SELECT person_id FROM person ORDER BY month_of_birth", {"column_not_in_extract"}),
    ("SELECT count(*) FROM person p JOIN condition_occurrence c "
     "ON p.person_source_value = c.condition_source_value", {"column_not_in_extract"}),
    ("SELECT count(*) FILTER (WHERE stop_reason IS NULL) FROM condition_occurrence",
     {"column_not_in_extract"}),
    # identifier tricks: quoting, case, FROM-first, comments
    ('SELECT "PERSON_SOURCE_VALUE" FROM "PERSON"', {"column_not_in_extract"}),
    ("FROM person SELECT month_of_birth", {"column_not_in_extract"}),
    ("SELECT/**/person_source_value/**/FROM/**/person", {"column_not_in_extract"}),
    ("SELECT * FROM main.\"person\" -- ; DROP TABLE person", None),  # allowed, harmless
    # size and depth
    ("SELECT 1 -- " + "x" * 10_000_000, {"sql_too_large"}),
    ("SELECT " + "(" * 5000 + "1" + ")" * 5000, {"query_too_complex"}),
    ("SELECT " + " + ".join(["1"] * 4000), {"query_too_complex"}),
    # runaway work: endless recursion, 10^12-row cross joins, huge values
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
     {"query_timeout"}),
    ("SELECT count(*) FROM range(1000000) a, range(1000000) b", {"query_timeout"}),
    ("SELECT repeat('x', 2000000000)", {"query_out_of_memory", "query_resources_exceeded"}),
]


@pytest.fixture(scope="module")
def hostile_home(tmp_path_factory):
    """One home for the whole list (building the release once keeps the suite fast)."""
    from portal.config import Settings

    root = tmp_path_factory.mktemp("hostile")
    settings = fast_limits(Settings.from_env({"PORTAL_HOME": str(root / "home")}),
                           root / "policies")
    ctx = Context.open(settings)
    make_omop_release(ctx)
    analyst = make_analyst(ctx)
    yield ctx, analyst
    ctx.close()


def assert_clean(message: str, ctx: Context) -> None:
    assert str(ctx.settings.home) not in message
    assert "/etc/" not in message and "/tmp/" not in message and "Traceback" not in message
    assert "SRC-" not in message


@pytest.mark.parametrize(("sql", "codes"), REFUSED, ids=[s[:50] for s, _ in REFUSED])
def test_hostile_sql_is_refused_or_contained(hostile_home, sql, codes):
    ctx, analyst = hostile_home
    before = len(audit.list_events(ctx.conn, action="query.run", limit=100000))
    if codes is None:
        q.run_query(ctx, analyst, "eunomia", sql)
    else:
        with pytest.raises(PortalError) as info:
            q.run_query(ctx, analyst, "eunomia", sql)
        assert info.value.code in codes, info.value.message
        assert_clean(info.value.message, ctx)
        assert " Error:" not in info.value.message and "LINE 1" not in info.value.message
    after = audit.list_events(ctx.conn, action="query.run", limit=100000)
    assert len(after) == before + 1
    event = after[0]
    assert event.decision == ("allowed" if codes is None else "rejected")
    assert event.details["sql_hash"] and len(event.details["sql"]) <= 8192
    assert "SRC-" not in json.dumps({k: v for k, v in event.details.items() if k != "sql"})
    follow_up = q.run_query(ctx, analyst, "eunomia", "SELECT count(*) FROM person")
    assert follow_up.rows == [[200]]


# Preflight is not the control: the same list, sent straight to a worker, is refused or
# contained by the locked connection in its jail. These may answer, with metadata of the
# extract itself (table names, settings, the jail's own path /data/extract.duckdb) or with
# the extract's own governed rows; every other entry must be refused.
ANSWERED_BY_THE_LOCKED_CONNECTION = {
    "PRAGMA show_tables", "SELECT * FROM duckdb_secrets()", "SELECT 1; SELECT 2",
    "SELECT * FROM query('SELECT * FROM person')", "SELECT * FROM query_table('person')",
    "SELECT * FROM duckdb_settings()", "SELECT * FROM duckdb_databases()",
    "SELECT * FROM duckdb_views()", "SELECT current_setting('temp_directory')",
    "SHOW DATABASES", "SELECT * FROM information_schema.tables",
    "SELECT * FROM main.\"person\" -- ; DROP TABLE person",
    "SELECT 1 -- " + "x" * 10_000_000,
}
# Files the jail does show (the extract, the worker program, /proc): only the lock stops these.
VISIBLE_IN_THE_JAIL = [
    "SELECT * FROM read_blob('/data/extract.duckdb')",
    "SELECT * FROM read_text('/opt/portal/sql_worker.py')",
    "SELECT * FROM read_text('/proc/self/status')",
    "SELECT * FROM read_csv('/proc/self/environ')",
    "ATTACH '/data/extract.duckdb' AS again",
]
RUNAWAY = {"query_timeout", "query_out_of_memory", "query_resources_exceeded"}
WORKER_CASES = [(sql, codes) for sql, codes in REFUSED] + [(sql, {"lock"})
                                                           for sql in VISIBLE_IN_THE_JAIL]


@pytest.fixture(scope="module")
def locked_worker(hostile_home):
    from portal.query.extracts import build_extract
    from portal.query.pool import WorkerPool
    from portal.services.policies import resolved_tier

    ctx, _ = hostile_home
    release, resolved = resolved_tier(ctx, "eunomia", "row-level")
    path = str(build_extract(ctx.settings, release, resolved))
    workers = WorkerPool(size=1, memory_mb=2048, threads=1, hidden=(ctx.settings.home,))
    yield workers, path, ctx
    workers.close()


def _host_files_named_in(sql: str) -> list[Path]:
    return [Path(p) for p in re.findall(r"'(/tmp/[^']*)'", sql)]


@pytest.mark.parametrize(("sql", "codes"), WORKER_CASES, ids=[s[:50] for s, _ in WORKER_CASES])
def test_hostile_sql_sent_straight_to_a_worker_is_refused_or_contained(locked_worker, sql,
                                                                       codes):
    workers, path, ctx = locked_worker
    named = _host_files_named_in(sql)
    assert not any(p.exists() for p in named)
    try:
        answer = workers.run(path, sql, max_rows=1000, time_limit=2)
    except Rejected as exc:
        assert sql not in ANSWERED_BY_THE_LOCKED_CONNECTION or exc.code in RUNAWAY
        if codes and codes & RUNAWAY:
            assert exc.code in RUNAWAY
        if codes == {"lock"} or exc.code == "query_failed":
            assert exc.context["kind"] == "PermissionException"  # the lock, not a missing file
        assert_clean(exc.message, ctx)
    else:
        assert sql in ANSWERED_BY_THE_LOCKED_CONNECTION, "the locked connection answered"
        shown = json.dumps(answer.rows, default=str)
        assert str(ctx.settings.home) not in shown and "/tmp/" not in shown
        assert "SRC-" not in shown and "HOLDOUT" not in shown and "root:x:" not in shown
    assert not any(p.exists() for p in named)  # nothing written or attached on the host
    settings = workers.run(path, "SELECT current_setting('enable_external_access'), "
                                 "current_setting('lock_configuration'), "
                                 "current_setting('access_mode'), "
                                 "(SELECT count(*) FROM duckdb_secrets()), "
                                 "(SELECT count(*) FROM person)", 5, 5)
    assert settings.rows == [(False, True, "read_only", 0, 200)]


def test_results_of_ten_billion_rows_are_capped(hostile_home):
    ctx, analyst = hostile_home
    result = q.run_query(ctx, analyst, "eunomia", "SELECT * FROM range(10000000000)")
    assert result.row_count == 1000 and result.truncated


def test_held_out_rows_are_not_in_the_extract(hostile_home):
    ctx, analyst = hostile_home
    result = q.run_query(ctx, analyst, "eunomia",
                         "SELECT count(*) FROM person WHERE person_id > 1000 UNION ALL "
                         "SELECT count(*) FROM condition_occurrence "
                         "WHERE condition_concept_id = 999999")
    assert result.rows == [[0], [0]]


def test_cte_named_like_a_table_cannot_bypass_the_extract(hostile_home):
    ctx, analyst = hostile_home
    result = q.run_query(ctx, analyst, "eunomia",
                         "WITH person AS (SELECT * FROM person) SELECT count(*), "
                         "max(person_id) FROM person")
    assert result.rows == [[200, 200]]
    with pytest.raises(PortalError) as info:
        q.run_query(ctx, analyst, "eunomia",
                    "WITH person AS (SELECT * FROM person) SELECT person_source_value "
                    "FROM person")
    assert info.value.code == "column_not_in_extract"


def test_extract_hides_dropped_columns_even_from_describe(hostile_home):
    ctx, analyst = hostile_home
    described = q.run_query(ctx, analyst, "eunomia", "DESCRIBE person")
    names = [row[0] for row in described.rows]
    assert "person_source_value" not in names and "month_of_birth" not in names
    summary = q.run_query(ctx, analyst, "eunomia", "SUMMARIZE person")
    assert "SRC-" not in json.dumps(summary.rows)


def test_another_teams_dataset_is_denied(hostile_home):
    ctx, _ = hostile_home
    outsider = make_analyst(ctx, team="gamma-ai", tier=None)
    with pytest.raises(PortalError) as info:
        q.run_query(ctx, outsider, "eunomia", "SELECT count(*) FROM person")
    assert info.value.code == "no_grant"
    with pytest.raises(PortalError) as info:
        q.run_query(ctx, outsider, "wdbc", "SELECT 1")
    assert info.value.code == "no_grant"


ROW_FILTER = {"        deny_columns: [\"*\"]\n  aggregate:":
              "        deny_columns: [\"*\"]\n        row_filter: \"year_of_birth >= 1960\"\n"
              "  aggregate:"}


@pytest.mark.parametrize("sql", [
    "WITH person AS (SELECT * FROM person) SELECT min(year_of_birth), count(*) FROM person",
    'SELECT min(year_of_birth), count(*) FROM "PERSON"',
    "SELECT min(year_of_birth), count(*) FROM main.person",
    "FROM person SELECT min(year_of_birth), count(*)",
    "SELECT min(year_of_birth), count(*) FROM person /* WHERE 1=1 */",
    "WITH RECURSIVE person AS (SELECT * FROM person) SELECT min(year_of_birth), count(*) "
    "FROM person",
])
def test_row_filter_cannot_be_bypassed(ctx, tmp_path, sql):
    from tests.factories_query import settings_with_policies

    make_omop_release(ctx)
    filtered = Context(settings_with_policies(ctx.settings, tmp_path / "p", ROW_FILTER),
                       ctx.conn)
    analyst = make_analyst(filtered)
    result = q.run_query(filtered, analyst, "eunomia", sql)
    assert result.rows == [[1960, 150]]  # 30 of the 40 birth years, 5 persons each


@pytest.mark.parametrize(("status", "code"), [("expired", "grant_expired"),
                                              ("revoked", "grant_revoked")])
def test_expired_or_revoked_grant_is_denied_and_audited(ctx, status, code):
    make_omop_release(ctx)
    analyst = make_analyst(ctx, status=status)
    with pytest.raises(PortalError) as info:
        q.run_query(ctx, analyst, "eunomia", "SELECT count(*) FROM person")
    assert info.value.code == code
    assert str(ctx.settings.home) not in info.value.message
    event = audit.list_events(ctx.conn, action="query.run", limit=1)[0]
    assert (event.decision, event.reason) == ("denied", code)
