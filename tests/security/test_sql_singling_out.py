"""Aggregate-tier queries that try to single out one person: refused, suppressed or blurred;
audited; the next query works. Person 6 is the only person born in 1920."""

from __future__ import annotations

import json

import pytest

from portal import audit
from portal.errors import PortalError
from portal.services import query as q
from portal.services.context import Context
from tests.factories_query import SUPPRESSION, fast_limits, make_analyst, make_omop_release

REFUSED = [
    "SELECT person_id, count(*) FROM person GROUP BY person_id",
    "SELECT count(*) FROM person WHERE person_id = 6",
    "SELECT year_of_birth FROM person WHERE person_id = 6",
    "SELECT count(*) FROM person p JOIN condition_occurrence c ON c.person_id = 6",
    "SELECT min(year_of_birth) FROM person",
    "SELECT max(year_of_birth) FROM person WHERE gender_concept_id = 8507",
    "SELECT gender_concept_id, min(year_of_birth), max(year_of_birth) FROM person GROUP BY 1",
    "SELECT median(year_of_birth) FROM person",
    "SELECT count(*) FILTER (WHERE year_of_birth = 1920) FROM person",
    "SELECT sum(CASE WHEN year_of_birth = 1920 THEN 1 ELSE 0 END) FROM person",
    "SELECT * FROM person",
    "SUMMARIZE person",
    "WITH one AS (SELECT * FROM person WHERE year_of_birth = 1920) SELECT count(*) FROM one",
]


@pytest.fixture(scope="module")
def aggregate_home(tmp_path_factory):
    from portal.config import Settings

    root = tmp_path_factory.mktemp("singling")
    settings = fast_limits(Settings.from_env({"PORTAL_HOME": str(root / "home")}),
                           root / "policies", SUPPRESSION)
    ctx = Context.open(settings)
    make_omop_release(ctx)
    analyst = make_analyst(ctx, team="beta-bio", tier="aggregate")
    yield ctx, analyst
    ctx.close()


@pytest.mark.parametrize("sql", REFUSED)
def test_singling_out_shape_is_refused(aggregate_home, sql):
    ctx, analyst = aggregate_home
    with pytest.raises(PortalError) as info:
        q.run_query(ctx, analyst, "eunomia", sql)
    assert info.value.code == "aggregate_shape_not_allowed"
    assert "1920" not in info.value.message
    event = audit.list_events(ctx.conn, action="query.run", limit=1)[0]
    assert (event.decision, event.reason) == ("rejected", "aggregate_shape_not_allowed")
    assert q.run_query(ctx, analyst, "eunomia", "SELECT count(*) FROM person").rows == [[200]]


def test_a_group_of_one_is_suppressed_not_shown_as_zero(aggregate_home):
    ctx, analyst = aggregate_home
    result = q.run_query(ctx, analyst, "eunomia",
                         "SELECT avg(year_of_birth) AS mean_birth, count(*) AS n FROM person "
                         "WHERE year_of_birth = 1920")
    assert result.rows == [[None, None]]
    assert result.row_suppressed == [True] and result.cell_suppressed == [[True, True]]
    assert result.suppressed == 1
    event = audit.list_events(ctx.conn, action="query.run", limit=1)[0]
    assert event.details["rows_suppressed"] == 1
    assert "1920.0" not in json.dumps({k: v for k, v in event.details.items() if k != "sql"})


def test_grouping_by_a_rare_value_suppresses_its_row(aggregate_home):
    ctx, analyst = aggregate_home
    result = q.run_query(ctx, analyst, "eunomia",
                         "SELECT year_of_birth < 1940 AS early, count(*) FROM person "
                         "GROUP BY 1 ORDER BY 1 DESC")
    # early = true is person 6 alone: suppressed and moved last; 199 persons round to 200
    assert result.rows == [[False, 200], [None, None]]
    assert result.row_suppressed == [False, True]


def test_differencing_two_large_counts_that_differ_by_one_person_is_blurred(aggregate_home):
    ctx, analyst = aggregate_home
    a = q.run_query(ctx, analyst, "eunomia",
                    "SELECT gender_concept_id, count(*) FROM person GROUP BY 1 ORDER BY 1")
    b = q.run_query(ctx, analyst, "eunomia",
                    "SELECT gender_concept_id, count(*) FROM person WHERE year_of_birth > 1920 "
                    "GROUP BY 1 ORDER BY 1")
    assert a.rows == b.rows  # 100 vs 99 persons: both round to 100


def test_join_on_person_id_is_allowed_and_verified(aggregate_home):
    ctx, analyst = aggregate_home
    result = q.run_query(ctx, analyst, "eunomia",
                         "SELECT c.condition_concept_id, count(DISTINCT p.person_id) AS persons "
                         "FROM person p JOIN condition_occurrence c "
                         "ON p.person_id = c.person_id GROUP BY 1 ORDER BY 1")
    assert result.rows == [[81893, 200], [192671, 200], [4112343, 200]]


@pytest.mark.parametrize("sql", [
    "SELECT count(*) FROM person WHERE rowid = 5",
    "SELECT gender_concept_id, count(*) FROM person WHERE year_of_birth = 1920 GROUP BY 1",
    "SELECT count(*), avg(year_of_birth) FROM condition_occurrence c JOIN person p "
    "ON p.person_id = c.person_id WHERE c.condition_occurrence_id = 61",
])
def test_filters_down_to_one_person_are_suppressed(aggregate_home, sql):
    ctx, analyst = aggregate_home
    result = q.run_query(ctx, analyst, "eunomia", sql)
    assert all(all(v is None for v in row) for row in result.rows)
    assert result.suppressed == result.row_count >= 1


def test_runtime_error_messages_cannot_carry_values_out_of_aggregate_tiers(aggregate_home):
    ctx, analyst = aggregate_home
    # A cast that fails for rows of one value is made total (TRY_CAST): the query runs, and
    # its only group (no row converts to 1) is suppressed, whatever the data holds.
    result = q.run_query(ctx, analyst, "eunomia",
                         "SELECT count(*) FROM person WHERE CAST(year_of_birth AS UTINYINT) = 1")
    assert (result.rows, result.suppressed) == ([[None]], 1)
    with pytest.raises(PortalError) as info:  # building strings is refused outright
        q.run_query(ctx, analyst, "eunomia",
                    "SELECT count(*) FROM person "
                    "WHERE CAST(year_of_birth::VARCHAR || 'x' AS INTEGER) = 1")
    assert info.value.code == "aggregate_function_not_allowed"
    assert "19" not in info.value.message and "x'" not in info.value.message
    with pytest.raises(PortalError) as info:
        q.run_query(ctx, analyst, "eunomia",
                    "SELECT count(*) FROM person WHERE year_of_birth = 1920 "
                    "AND error(year_of_birth::VARCHAR) IS NULL")
    assert info.value.code == "aggregate_shape_not_allowed"
    with pytest.raises(PortalError) as info:  # schema errors stay helpful
        q.run_query(ctx, analyst, "eunomia", "SELECT count(shoe_size) FROM person")
    assert info.value.code == "query_error" and "shoe_size" in info.value.message
