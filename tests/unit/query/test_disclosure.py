"""Aggregate disclosure control: allowed shapes, refused shapes, suppression and rounding."""

from __future__ import annotations

import json

import duckdb
import pytest

from portal.errors import Rejected
from portal.policy.engine import resolve_tier
from portal.policy.model import DatasetPolicy
from portal.query import disclosure
from portal.query.preflight import preflight
from tests.factories import release_shape

RELEASE = release_shape("v1", {
    "person": (("person_id", "gender_concept_id", "year_of_birth"), "person_id"),
    "condition_occurrence": (("person_id", "condition_concept_id", "value"), "person_id"),
    "concept": (("concept_id", "concept_name"), None),
})
POLICY = DatasetPolicy.model_validate({
    "dataset": "demo", "terms": "t",
    "tiers": {"aggregate": {"description": "d", "result_mode": "aggregate", "min_persons": 11,
                            "round_counts_to": 5, "max_rows": 100,
                            "budget": {"per_minute": 1, "per_day": 1}, "max_grant_days": 1,
                            "tables": {"*": {"allow_columns": ["*"]}}}}})
RESOLVED = resolve_tier(POLICY, "aggregate", RELEASE)


def plan(sql: str):
    return disclosure.plan_aggregate(preflight(sql, RESOLVED.tables), RESOLVED)


ALLOWED = [
    "SELECT count(*) FROM person",
    "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY gender_concept_id",
    "SELECT year_of_birth >= 1970 AS young, count(DISTINCT person_id) FROM person GROUP BY 1",
    "SELECT c.condition_concept_id, count(*), avg(p.year_of_birth) FROM person p "
    "JOIN condition_occurrence c ON p.person_id = c.person_id GROUP BY ALL ORDER BY 2 DESC LIMIT 10",
    "SELECT gender_concept_id, round(avg(year_of_birth), 1) FROM person GROUP BY 1",
    "SELECT gender_concept_id, sum(value), stddev(value) FROM person JOIN condition_occurrence "
    "USING (person_id) WHERE year_of_birth > 1950 GROUP BY 1 HAVING count(*) > 20",
    "SELECT count(*) FROM concept",
    "DESCRIBE person",
    "SHOW TABLES",
]

REFUSED = [
    # singling out through the person identifier
    "SELECT person_id, count(*) FROM person GROUP BY person_id",
    "SELECT count(*) FROM person WHERE person_id = 6",
    "SELECT count(*) FROM person WHERE person_id <> 6",
    "SELECT count(*) FROM person p JOIN condition_occurrence c ON p.person_id = 6",
    "SELECT count(*) FROM person HAVING max(person_id) > 0",
    "SELECT gender_concept_id, count(*) FROM person GROUP BY 1 ORDER BY min(person_id)",
    "SELECT sum(person_id) FROM person",
    "SELECT count(*) FROM person AS p(pid) WHERE pid = 6",
    # one person's value through an order statistic
    "SELECT min(year_of_birth) FROM person",
    "SELECT max(year_of_birth) FROM person WHERE gender_concept_id = 8507",
    "SELECT median(year_of_birth) FROM person",
    "SELECT arg_max(year_of_birth, gender_concept_id) FROM person",
    "SELECT list(year_of_birth) FROM person",
    "SELECT string_agg(year_of_birth::VARCHAR, ',') FROM person",
    "SELECT any_value(year_of_birth) FROM person",
    # conditional aggregates that hide a tiny subgroup inside a large group
    "SELECT count(*) FILTER (WHERE year_of_birth = 1920) FROM person",
    "SELECT sum(CASE WHEN year_of_birth = 1920 THEN 1 ELSE 0 END) FROM person",
    "SELECT sum((year_of_birth = 1920)::INTEGER) FROM person",
    "SELECT count(*) * 1 FROM person",
    "SELECT gender_concept_id, count(*) FROM person GROUP BY 1 "
    "HAVING sum(CASE WHEN year_of_birth = 1920 THEN 1 ELSE 0 END) = 1",
    "SELECT gender_concept_id, count(*) FROM person GROUP BY 1 "
    "ORDER BY count(*) FILTER (WHERE year_of_birth = 1920)",
    "SELECT avg(year_of_birth + 0) FROM person",
    # row-level shapes
    "SELECT * FROM person",
    "SELECT year_of_birth FROM person",
    "SELECT DISTINCT year_of_birth FROM person",
    "SUMMARIZE person",
    "EXPLAIN ANALYZE SELECT count(*) FROM person",
    "EXPLAIN SELECT count(*) FROM person WHERE year_of_birth = 1920",
    # a SHOW nested in a larger query is a query, not a DESCRIBE
    "SELECT * FROM (DESCRIBE person), person",
    "SELECT p.* FROM person p, (SHOW TABLES) t",
    # shapes the engine cannot verify
    "WITH p AS (SELECT * FROM person) SELECT count(*) FROM p",
    "SELECT count(*) FROM (SELECT * FROM person WHERE year_of_birth = 1920)",
    "SELECT count(*) FROM person UNION ALL SELECT count(*) FROM person",
    "SELECT count(*) FROM person WHERE year_of_birth IN (SELECT 1920)",
    "SELECT count(*) OVER () FROM person",
    "SELECT (SELECT 1), count(*) FROM person",
    "SELECT count(*) FROM range(10)",
]


def _typed_tables() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE person (person_id BIGINT, gender_concept_id BIGINT, "
                "year_of_birth BIGINT)")
    con.execute("CREATE TABLE condition_occurrence (person_id BIGINT, "
                "condition_concept_id BIGINT, value DOUBLE)")
    con.execute("CREATE TABLE concept (concept_id BIGINT, concept_name VARCHAR)")
    return con


@pytest.mark.parametrize("sql", ALLOWED)
def test_aggregate_shape_allowed(sql):
    result = plan(sql)
    if sql.startswith(("DESCRIBE", "SHOW")):
        assert result is None
        return
    con = _typed_tables()
    # json_serialize_sql reports a parse failure in its result instead of raising
    parsed = json.loads(con.execute("SELECT json_serialize_sql(?)", [result.sql]).fetchone()[0])
    assert parsed["error"] is False, parsed
    assert len(parsed["statements"]) == 1
    described = con.execute(f"DESCRIBE {result.sql}").fetchall()  # binds on real tables
    assert len(described) == result.user_columns + len(result.group_columns) + sum(
        len(v) for v in result.cell_columns.values())


def test_a_rewrite_that_does_not_parse_is_detected():
    parsed = json.loads(duckdb.connect().execute("SELECT json_serialize_sql(?)",
                                                 ["SELECT count(* FROM person"]).fetchone()[0])
    assert parsed["error"] is True  # what the check above relies on


@pytest.mark.parametrize("sql", REFUSED)
def test_aggregate_shape_refused(sql):
    with pytest.raises(Rejected) as info:
        plan(sql)
    assert info.value.code == "aggregate_shape_not_allowed"
    # The message is the broken rule alone: one sentence, not the whole allowed shape.
    assert "Aggregate access allows" not in info.value.message
    assert info.value.message.count(". ") <= 1 and len(info.value.message) <= 160


def test_rewrite_counts_distinct_persons_of_every_personal_table():
    result = plan("SELECT c.condition_concept_id, avg(value) FROM person p "
                  "JOIN condition_occurrence c ON p.person_id = c.person_id GROUP BY 1")
    assert result.user_columns == 2
    assert len(result.group_columns) == 2  # p and c
    assert 'count(DISTINCT p.person_id)' in result.sql
    assert 'count(DISTINCT c.person_id)' in result.sql
    # user columns 0-1, then per table: persons in the row, persons with a value in column 1
    assert result.cell_columns == {1: [3, 5]}
    assert result.group_columns == [2, 4]


def test_apply_suppresses_small_rows_entirely_and_moves_them_last():
    result = plan("SELECT year_of_birth, count(*) FROM person GROUP BY 1")
    rows = [(1920, 1, 1), (1950, 40, 40), (1960, 12, 11)]
    shown = disclosure.apply(result, rows, min_persons=11, round_to=5)
    assert shown.rows == [[1950, 40], [1960, 10], [None, None]]
    assert shown.row_suppressed == [False, False, True]
    assert shown.cell_suppressed[2] == [True, True]
    assert shown.suppressed_rows == 1


def test_apply_hides_a_cell_backed_by_too_few_persons():
    result = plan("SELECT gender_concept_id, avg(value) FROM person JOIN condition_occurrence "
                  "USING (person_id) GROUP BY 1")
    width = result.user_columns + len(result.group_columns) + sum(
        len(v) for v in result.cell_columns.values())
    row = [8507, 3.5] + [50] * (width - 2)
    row[result.cell_columns[1][0]] = 2  # only two persons have a value
    shown = disclosure.apply(result, [tuple(row)], min_persons=11, round_to=5)
    assert shown.rows == [[8507, None]]
    assert shown.cell_suppressed == [[False, True]]
    assert shown.suppressed_cells == 1


def test_apply_never_suppresses_tables_without_persons():
    result = plan("SELECT count(*) FROM concept")
    assert result.group_columns == []
    shown = disclosure.apply(result, [(3,)], min_persons=11, round_to=5)
    assert shown.rows == [[5]]


@pytest.mark.parametrize(("value", "step", "expected"), [
    (0, 5, 0), (2, 5, 0), (3, 5, 5), (12, 5, 10), (13, 5, 15), (-13, 5, -15), (7, 1, 7),
    (12.4, 5, 10.0), (True, 5, True), (None, 5, None),
])
def test_round_value(value, step, expected):
    assert disclosure.round_value(value, step) == expected
