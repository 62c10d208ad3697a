"""Property: in an aggregate tier every row shown is backed by at least min_persons distinct
persons, and every suppressed row by fewer — checked against trusted DuckDB on the release."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.services import query as q
from portal.services.context import Context
from tests.factories_query import SUPPRESSION, fast_limits, make_analyst, make_omop_release

GROUPS = ["gender_concept_id", "year_of_birth", "year_of_birth // 10",
          "year_of_birth % 7", "condition_concept_id", "year_of_birth < 1930"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from portal.config import Settings

    root = tmp_path_factory.mktemp("property")
    settings = fast_limits(Settings.from_env({"PORTAL_HOME": str(root / "home")}),
                           root / "policies", SUPPRESSION)
    ctx = Context.open(settings)
    release = make_omop_release(ctx)
    analyst = make_analyst(ctx, team="beta-bio", tier="aggregate")
    trusted = duckdb.connect(str(release.dev_path), read_only=True)
    yield ctx, analyst, trusted
    trusted.close()
    ctx.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(group=st.sampled_from(GROUPS), low=st.integers(1900, 1995),
       width=st.integers(0, 60), gender=st.sampled_from([None, 8507, 8532]))
def test_every_shown_row_has_enough_persons(world, group, low, width, gender):
    ctx, analyst, trusted = world
    where = f"year_of_birth BETWEEN {low} AND {low + width}"
    if gender:
        where += f" AND gender_concept_id = {gender}"
    body = (f"FROM person p JOIN condition_occurrence c ON p.person_id = c.person_id "
            f"WHERE {where} GROUP BY 1")
    result = q.run_query(ctx, analyst, "eunomia", f"SELECT {group} AS g, count(*) AS n {body}")
    truth = dict(trusted.execute(f"SELECT {group}, count(DISTINCT p.person_id) {body}")
                 .fetchall())
    shown = [row[0] for row, hidden in zip(result.rows, result.row_suppressed, strict=True)
             if not hidden]
    assert all(truth[g] >= 11 for g in shown)
    assert result.suppressed == sum(1 for persons in truth.values() if persons < 11)
    assert all(n % 5 == 0 for row, hidden in zip(result.rows, result.row_suppressed,
                                                strict=True) if not hidden for n in row[1:])
