"""Preflight: good and bad SQL as lists (DuckDB's own parser, an allowlist)."""

from __future__ import annotations

import pytest

from portal.errors import Rejected
from portal.query.preflight import MAX_SQL_BYTES, preflight

TABLES = {"person", "condition_occurrence"}

ACCEPTS = [
    "SELECT 1",
    "select * from person",
    "SELECT * FROM PERSON",
    'SELECT * FROM "person"',
    "SELECT * FROM main.person",
    "FROM person SELECT year_of_birth",
    "FROM person",
    "/* hello */ SELECT count(*) FROM person -- bye",
    "WITH p AS (SELECT * FROM person) SELECT count(*) FROM p",
    "WITH person AS (SELECT 1 AS x) SELECT * FROM person",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
    "SELECT p.year_of_birth, count(*) FROM person p JOIN condition_occurrence c USING (person_id)"
    " GROUP BY ALL ORDER BY 2 DESC LIMIT 5",
    "SELECT * FROM range(10)",
    "SELECT * FROM generate_series(1, 3)",
    "SELECT unnest([1, 2, 3])",
    "DESCRIBE person",
    "SUMMARIZE person",
    "SHOW TABLES",
    "EXPLAIN SELECT * FROM person",
    "explain analyze select count(*) from person",
    "SELECT 1;",
]

REJECTS = [
    # statement types
    ("CREATE TABLE x AS SELECT 1", "statement_not_allowed"),
    ("INSERT INTO person VALUES (1)", "statement_not_allowed"),
    ("UPDATE person SET year_of_birth = 1", "statement_not_allowed"),
    ("DELETE FROM person", "statement_not_allowed"),
    ("DROP TABLE person", "statement_not_allowed"),
    ("ATTACH '/tmp/x.duckdb' AS x", "statement_not_allowed"),
    ("DETACH x", "statement_not_allowed"),
    ("COPY person TO '/tmp/out.csv'", "statement_not_allowed"),
    ("EXPORT DATABASE '/tmp/out'", "statement_not_allowed"),
    ("INSTALL httpfs", "statement_not_allowed"),
    ("LOAD httpfs", "statement_not_allowed"),
    ("SET enable_external_access = true", "statement_not_allowed"),
    ("RESET threads", "statement_not_allowed"),
    ("PRAGMA database_list", "statement_not_allowed"),
    ("CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", "statement_not_allowed"),
    ("CALL duckdb_settings()", "statement_not_allowed"),
    ("SHOW DATABASES", "statement_not_allowed"),
    ("SHOW ALL TABLES", "statement_not_allowed"),
    # several statements
    ("SELECT 1; SELECT 2", "multiple_statements"),
    ("SELECT 1; DROP TABLE person", "statement_not_allowed"),
    # file readers, globbing, remote URLs, a path as a table name
    ("SELECT * FROM read_csv('/etc/passwd')", "function_not_allowed"),
    ("SELECT * FROM read_text('/etc/passwd')", "function_not_allowed"),
    ("SELECT * FROM read_blob('/proc/self/environ')", "function_not_allowed"),
    ("SELECT * FROM glob('/*')", "function_not_allowed"),
    ("SELECT * FROM parquet_metadata('x.parquet')", "function_not_allowed"),
    ("SELECT * FROM '/etc/passwd'", "unknown_table"),
    ("SELECT * FROM 'https://example.com/x.csv'", "unknown_table"),
    ("SELECT * FROM read_parquet('s3://bucket/x.parquet')", "function_not_allowed"),
    # dynamic SQL
    ("SELECT * FROM query('SELECT 1')", "function_not_allowed"),
    ("SELECT * FROM query_table('person')", "function_not_allowed"),
    ("SELECT json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
     "function_not_allowed"),
    # metadata that reveals paths, settings or policy text
    ("SELECT * FROM duckdb_settings()", "function_not_allowed"),
    ("SELECT * FROM duckdb_databases()", "function_not_allowed"),
    ("SELECT * FROM duckdb_views()", "function_not_allowed"),
    ("SELECT * FROM duckdb_secrets()", "function_not_allowed"),
    ("SELECT * FROM pragma_database_list()", "function_not_allowed"),
    ("SELECT current_setting('temp_directory')", "function_not_allowed"),
    ("SELECT * FROM information_schema.tables", "unknown_table"),
    ("SELECT * FROM pg_catalog.pg_tables", "unknown_table"),
    ("SELECT * FROM other.main.person", "unknown_table"),
    ("SELECT * FROM main.\"main\".person", "unknown_table"),
    # tables outside the extract, including the held-out partition
    ("SELECT * FROM holdout", "unknown_table"),
    ("SELECT * FROM drug_exposure", "unknown_table"),
    ("SELECT * FROM person_holdout", "unknown_table"),
    # malformed, empty, oversized, deep
    ("SELEC 1", "sql_syntax_error"),
    ("", "empty_query"),
    ("   ", "empty_query"),
    ("-- only a comment", "empty_query"),
    ("SELECT " + "x" * (MAX_SQL_BYTES + 1), "sql_too_large"),
    ("SELECT " + "(" * 3000 + "1" + ")" * 3000, "query_too_complex"),
    ("SELECT " + "+".join(["1"] * 5000), "query_too_complex"),
]


@pytest.mark.parametrize("sql", ACCEPTS)
def test_preflight_accepts(sql):
    result = preflight(sql, TABLES)
    assert result.sql == sql
    assert len(result.sql_hash) == 64


@pytest.mark.parametrize(("sql", "code"), REJECTS, ids=[s[:40] for s, _ in REJECTS])
def test_preflight_rejects(sql, code):
    with pytest.raises(Rejected) as info:
        preflight(sql, TABLES)
    assert info.value.code == code
    assert "/etc" not in info.value.message and "/tmp" not in info.value.message


def test_preflight_reports_tables_and_functions_referenced():
    result = preflight("SELECT lower(x.year_of_birth::VARCHAR), count(*) FROM person x "
                       "JOIN condition_occurrence c USING (person_id) GROUP BY 1", TABLES)
    assert result.tables == ("condition_occurrence", "person")
    assert {"lower", "count_star"} <= set(result.functions)


def test_preflight_marks_explain_analyze_and_statement_kinds():
    assert preflight("EXPLAIN ANALYZE SELECT 1", TABLES).analyze is True
    assert preflight("EXPLAIN SELECT 1", TABLES).explain is True
    assert preflight("DESCRIBE person", TABLES).kind == "describe"
    assert preflight("SUMMARIZE person", TABLES).kind == "summarize"
    assert preflight("SHOW TABLES", TABLES).kind == "show_tables"
    assert preflight("SELECT * FROM (DESCRIBE person), person", TABLES).kind == "select"
    assert preflight("SELECT column_name FROM (DESCRIBE person)", TABLES).kind == "select"


def test_ten_megabytes_of_sql_is_refused_before_parsing():
    with pytest.raises(Rejected) as info:
        preflight("SELECT 1 " + " " * 10_000_000, TABLES)
    assert info.value.code == "sql_too_large"
