"""DP planning, contribution bounding in DuckDB, and the noise OpenDP adds (distribution and
95% half-widths checked on large fixed samples, loose enough not to flake)."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pytest

from portal.catalog.releases import Release, ReleaseColumn, ReleaseTable
from portal.errors import Rejected
from portal.policy.engine import resolve_tier
from portal.policy.model import DatasetPolicy
from portal.query import dp, dp_noise
from portal.query.preflight import preflight

COLUMNS = {
    "person": [("person_id", "BIGINT", None, None),
               ("gender_concept_id", "BIGINT", None, (8507, 8532)),
               ("year_of_birth", "BIGINT", (1900, 2020), None),
               ("site", "BIGINT", None, tuple(range(2000)))],
    "condition_occurrence": [("person_id", "BIGINT", None, None),
                             ("condition_concept_id", "BIGINT", None, None),
                             ("value", "DOUBLE", (0, 10), None),
                             ("unbounded", "DOUBLE", None, None)],
    "concept": [("concept_id", "BIGINT", None, None), ("concept_name", "VARCHAR", None, None)],
}
RELEASE = Release("demo", "v1", Path("/nonexistent"), "", {
    name: ReleaseTable(name, tuple(ReleaseColumn(c, t, "clinical", "", b, k)
                                   for c, t, b, k in cols),
                       None if name == "concept" else "person_id", 0, 0)
    for name, cols in COLUMNS.items()}, {})
POLICY = DatasetPolicy.model_validate({
    "dataset": "demo", "terms": "t",
    "tiers": {"dp": {"description": "d", "result_mode": "aggregate", "min_persons": 11,
                     "max_rows": 5000, "disclosure": "dp",
                     "dp": {"rho_per_query": 0.5, "budget_rho": 5.0},
                     "budget": {"per_minute": 1, "per_day": 1}, "max_grant_days": 1,
                     "tables": {"*": {"allow_columns": ["*"]}}}}})
RESOLVED = resolve_tier(POLICY, "dp", RELEASE)


def plan(sql: str) -> dp.DpPlan:
    return dp.plan_dp(preflight(sql, RESOLVED.tables), RESOLVED, RELEASE)


ALLOWED = [
    "SELECT count(*) FROM person",
    "SELECT gender_concept_id, count(DISTINCT person_id), avg(year_of_birth) FROM person "
    "GROUP BY 1",
    "SELECT c.condition_concept_id, count(*) AS n, sum(value) FROM person p JOIN "
    "condition_occurrence c ON p.person_id = c.person_id WHERE year_of_birth > 1950 "
    "GROUP BY ALL ORDER BY n DESC LIMIT 10",
    "SELECT gender_concept_id, round(avg(year_of_birth), 1) FROM person JOIN "
    "condition_occurrence USING (person_id) GROUP BY gender_concept_id",
    "SELECT year_of_birth >= 1970 AS young, count(value) FROM person p JOIN "
    "condition_occurrence c ON c.person_id = p.person_id GROUP BY young",
]
REFUSED = [
    # a sum over a column without public clipping bounds
    ("SELECT sum(unbounded) FROM condition_occurrence", "aggregate_shape_not_allowed"),
    # HAVING filters on exact values
    ("SELECT gender_concept_id, count(*) FROM person GROUP BY 1 HAVING count(*) > 5",
     "aggregate_shape_not_allowed"),
    # a hidden group key
    ("SELECT count(*) FROM person GROUP BY year_of_birth", "aggregate_shape_not_allowed"),
    # two personal tables not joined on the person: one person's row meets many persons
    ("SELECT count(*) FROM person p JOIN condition_occurrence c "
     "ON p.year_of_birth = c.condition_concept_id", "aggregate_shape_not_allowed"),
    ("SELECT stddev(value) FROM condition_occurrence", "aggregate_shape_not_allowed"),
    ("SELECT count(DISTINCT condition_concept_id) FROM condition_occurrence",
     "aggregate_shape_not_allowed"),
    ("SELECT gender_concept_id, count(*) FROM person GROUP BY 1 ORDER BY min(year_of_birth)",
     "aggregate_shape_not_allowed"),
    # the oracles
    ("SELECT count(*) FROM person WHERE levenshtein(repeat('x', year_of_birth), 'y') > 0",
     "aggregate_function_not_allowed"),
    ("SELECT count(*) FROM person WHERE regexp_matches(gender_concept_id::VARCHAR, '(a+)+$')",
     "aggregate_function_not_allowed"),
    ("SELECT count(*) FROM person WHERE year_of_birth = 1920 AND error('x') IS NULL",
     "aggregate_shape_not_allowed"),
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_dp_shape_allowed_and_rewrite_binds(sql):
    result = plan(sql)
    con = _tables()
    described = con.execute(f"DESCRIBE {result.sql}").fetchall()
    assert len(described) == result.key_count + len(result.measures)
    assert result.rho == 0.5 and result.sigmas


@pytest.mark.parametrize(("sql", "code"), REFUSED)
def test_dp_shape_refused(sql, code):
    with pytest.raises(Rejected) as info:
        plan(sql)
    assert info.value.code == code


def _tables() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE person AS SELECT range AS person_id, "
                "CASE WHEN range % 2 = 0 THEN 8507 ELSE 8532 END AS gender_concept_id, "
                "1950 + range % 40 AS year_of_birth, range % 7 AS site FROM range(1, 101)")
    # person 1: 50 rows of concept 7 and one row in each of concepts 100..109;
    # everyone else: one row of concept 7 with value 20 (clipped to 10)
    con.execute("CREATE TABLE condition_occurrence AS "
                "SELECT 1 AS person_id, 7 AS condition_concept_id, 5.0 AS value, "
                "0.0 AS unbounded FROM range(50) UNION ALL "
                "SELECT 1, 100 + range, 5.0, 0.0 FROM range(10) UNION ALL "
                "SELECT range, 7, 20.0, 0.0 FROM range(2, 101)")
    con.execute("CREATE TABLE concept (concept_id BIGINT, concept_name VARCHAR)")
    return con


def test_contributions_are_bounded_per_group_and_per_person():
    result = plan("SELECT condition_concept_id, count(*), sum(value) FROM condition_occurrence "
                  "GROUP BY 1")
    rows = _tables().execute(result.sql).fetchall()
    by_key = {r[0]: r[1:] for r in rows}
    names = [m.alias for m in result.measures]
    persons, count_rows = names.index("__dp_persons"), names.index("__dp_rows")
    # max_rows_per_group 1: person 1's 50 rows of concept 7 count at most once, so rows
    # equal persons in every group
    assert all(v[count_rows] == v[persons] for v in by_key.values())
    assert by_key[7][persons] in (99, 100)
    # person 1 is in 11 groups but kept in at most 4 (max_groups_per_person)
    groups_of_person_1 = (by_key[7][persons] == 100) + sum(1 for k in by_key if k != 7)
    assert groups_of_person_1 == 4
    # the sum is of clipped, centred, quantised values: 99 values clipped to 10 → +5 each
    step = result.values[0].step
    total = by_key[7][names.index("__dp_sum_0")] * step
    assert total == pytest.approx(99 * 5, abs=step)


def test_noise_is_a_discrete_gaussian_with_the_planned_spread():
    sigma = 4.0
    sample = dp_noise._vector_gaussian(sigma)([0] * 40_000)
    mean = sum(sample) / len(sample)
    variance = sum((x - mean) ** 2 for x in sample) / (len(sample) - 1)
    assert abs(mean) < 0.15  # 7 standard errors
    assert variance == pytest.approx(sigma ** 2, rel=0.05)
    # integer noise: the half-width is rounded up, |x| <= 8 at σ 4 (about 96.6%)
    inside = sum(abs(x) <= dp_noise.count_half_width(sigma) for x in sample) / len(sample)
    assert dp_noise.count_half_width(sigma) == 8
    assert 0.95 < inside < 0.98
    assert all(isinstance(x, int) for x in sample[:100])  # integers: OpenDP's exact sampler


def test_half_widths_cover_the_exact_answer_95_percent_of_the_time():
    result = plan("SELECT site, count(*), avg(year_of_birth), sum(year_of_birth) FROM person "
                  "GROUP BY 1")
    assert result.public_keys is not None and len(result.public_keys) == 2000
    step, mid = result.values[0].step, result.values[0].mid
    exact_rows = [(k, 400, round((1980 - mid) / step) * 400, 400) for k in range(2000)]
    answer = dp_noise.release(result, exact_rows, max_rows=5000)
    assert [row[0] for row in answer.rows] == list(range(2000))
    truth = (400, 1980.0, 1980 * 400)
    for column in (1, 2, 3):
        covered = sum(abs(row[column] - truth[column - 1]) <= width[column]
                      for row, width in zip(answer.rows, answer.half_widths, strict=True))
        assert 0.92 < covered / 2000 < 0.98, column


def test_partition_selection_hides_small_groups_and_releases_large_ones():
    result = plan("SELECT condition_concept_id, count(DISTINCT person_id) FROM "
                  "condition_occurrence GROUP BY 1")
    sigma, threshold = result.selection
    spent = dp_noise._threshold(sigma, threshold).map(dp_noise._selection_distance(result.l0))
    assert spent[0] <= result.rho / len(result.measures) + 1e-12
    assert spent[1] <= result.settings.selection_delta
    exact = [(k, 1) for k in range(3000)] + [(10_000 + k, 1000) for k in range(50)]
    answer = dp_noise.release(result, exact, max_rows=5000)
    assert [row[0] for row in answer.rows] == [10_000 + k for k in range(50)]
    assert all(abs(row[1] - 1000) < 6 * sigma for row in answer.rows)


def test_ungrouped_counts_over_1000_persons_are_within_1_percent():
    result = plan("SELECT count(DISTINCT person_id) FROM person")
    assert dp_noise.count_half_width(result.sigmas["__dp_persons"]) < 0.01 * 1000
    assert math.isclose(result.sigmas["__dp_persons"], 1.0, rel_tol=1e-3)  # ρ 0.5, Δ 1


def test_order_by_and_limit_apply_to_the_released_rows():
    result = plan("SELECT gender_concept_id, count(DISTINCT person_id) AS n FROM person "
                  "GROUP BY 1 ORDER BY n DESC LIMIT 1")
    assert result.order == [(1, True)] and result.limit == (1, 0)
    answer = dp_noise.release(result, [(8507, 10), (8532, 1000)], max_rows=100)
    assert [row[0] for row in answer.rows] == [8532]
