"""run_query end to end: real store, real release files, real extract, real worker processes."""

from __future__ import annotations

import json

import duckdb
import pytest

from portal import audit
from portal.catalog.releases import current_release
from portal.cli import main
from portal.errors import Denied, QuotaExceeded, Rejected
from portal.services import query as q
from portal.services.context import Context
from tests.factories_query import (
    SUPPRESSION,
    dp_tier,
    make_analyst,
    make_omop_release,
    settings_with_policies,
)


@pytest.fixture
def omop(ctx):
    make_omop_release(ctx)
    return ctx


def events(ctx):
    return audit.list_events(ctx.conn, action="query.run")


def test_row_level_query_returns_rows_and_one_audit_event(omop):
    analyst = make_analyst(omop)
    result = q.run_query(omop, analyst, "eunomia",
                         "SELECT person_id, year_of_birth FROM person ORDER BY 1 LIMIT 3")
    assert result.columns == ["person_id", "year_of_birth"]
    assert result.rows == [[1, 1951], [2, 1952], [3, 1953]]
    assert (result.row_count, result.truncated, result.suppressed) == (3, False, 0)
    assert result.tier == "row-level"
    [event] = events(omop)
    assert event.decision == "allowed" and event.actor == analyst.email
    assert event.team == "acme-health"
    assert event.details["tables"] == ["person"]
    assert event.details["rows_returned"] == 3
    assert event.details["sql_hash"] and "ORDER BY 1" in event.details["sql"]
    assert "1951" not in json.dumps(event.details)  # never result values


def test_row_level_results_are_capped_and_marked_truncated(omop):
    analyst = make_analyst(omop)
    result = q.run_query(omop, analyst, "eunomia", "SELECT * FROM range(10000000000)")
    assert result.row_count == 1000
    assert result.truncated is True
    assert events(omop)[0].details["truncated"] is True


def _suppression(omop, tmp_path):
    """The bundled aggregate tier in suppression mode (exact aggregates)."""
    return Context(settings_with_policies(omop.settings, tmp_path / "p", SUPPRESSION), omop.conn)


def test_aggregate_tier_suppresses_small_groups_and_rounds_counts(omop, tmp_path):
    omop = _suppression(omop, tmp_path)
    analyst = make_analyst(omop, team="beta-bio", tier="aggregate")
    result = q.run_query(omop, analyst, "eunomia",
                         "SELECT year_of_birth < 1930 AS old, count(*) AS n FROM person "
                         "GROUP BY 1 ORDER BY 1")
    assert result.rows == [[False, 200], [None, None]]  # the single 1920 birth is suppressed
    assert result.row_suppressed == [False, True]
    assert result.suppressed == 1
    odd = q.run_query(omop, analyst, "eunomia",
                      "SELECT condition_concept_id, count(*) FROM condition_occurrence "
                      "GROUP BY 1 ORDER BY 1")
    assert all(n % 5 == 0 for _, n in odd.rows)
    assert events(omop)[0].details["rows_suppressed"] == 0
    assert events(omop)[1].details["rows_suppressed"] == 1


def test_sums_are_rounded_in_suppression_mode(omop, tmp_path):
    omop = _suppression(omop, tmp_path)
    analyst = make_analyst(omop, team="beta-bio", tier="aggregate")
    # 200 persons: sum of year_of_birth is 393864 exactly (a HUGEINT in DuckDB)
    result = q.run_query(omop, analyst, "eunomia", "SELECT sum(year_of_birth) FROM person")
    assert result.rows == [[393865]]


def test_differencing_two_large_counts_is_blurred_by_rounding(omop, tmp_path):
    omop = _suppression(omop, tmp_path)
    analyst = make_analyst(omop, team="beta-bio", tier="aggregate")
    everyone = q.run_query(omop, analyst, "eunomia", "SELECT count(*) FROM person")
    all_but_one = q.run_query(omop, analyst, "eunomia",
                              "SELECT count(*) FROM person WHERE year_of_birth <> 1920")
    assert everyone.rows == all_but_one.rows == [[200]]


@pytest.mark.parametrize(("status", "code"), [("expired", "grant_expired"),
                                              ("revoked", "grant_revoked")])
def test_run_query_with_inactive_grant_is_denied(omop, status, code):
    analyst = make_analyst(omop, status=status)
    with pytest.raises(Denied) as info:
        q.run_query(omop, analyst, "eunomia", "SELECT count(*) FROM person")
    assert info.value.code == code
    assert events(omop)[0].decision == "denied" and events(omop)[0].reason == code


def test_run_query_without_grant_is_denied(omop):
    make_analyst(omop)  # acme-health holds a grant; gamma-ai does not
    outsider = make_analyst(omop, team="gamma-ai", tier=None)
    with pytest.raises(Denied) as info:
        q.run_query(omop, outsider, "eunomia", "SELECT count(*) FROM person")
    assert info.value.code == "no_grant"
    assert events(omop)[0].team == "gamma-ai"


def test_budget_per_minute_is_enforced(omop, tmp_path):
    settings = settings_with_policies(omop.settings, tmp_path / "p",
                                      {"per_minute: 30": "per_minute: 2"})
    ctx = Context(settings, omop.conn)
    analyst = make_analyst(ctx)
    for _ in range(2):
        q.run_query(ctx, analyst, "eunomia", "SELECT 1")
    with pytest.raises(QuotaExceeded) as info:
        q.run_query(ctx, analyst, "eunomia", "SELECT 1")
    assert info.value.code == "query_budget_exceeded"
    assert [e.decision for e in events(ctx)] == ["denied", "allowed", "allowed"]
    # the budget is per dataset and tier: another grant of the same user is unaffected
    make_omop_release(ctx, dataset_id="omop_synth")
    from tests.factories_access import make_grant

    make_grant(ctx, "acme-health", "omop_synth", "row-level")
    settings_with_policies(omop.settings, tmp_path / "p", {"per_minute: 600": "per_minute: 2"},
                           dataset="omop_synth")
    assert q.run_query(ctx, analyst, "omop_synth", "SELECT 1").rows == [[1]]


def test_history_saved_queries_schema_and_download(omop):
    analyst = make_analyst(omop)
    q.run_query(omop, analyst, "eunomia", "SELECT 1")
    with pytest.raises(Rejected):
        q.run_query(omop, analyst, "eunomia", "DROP TABLE person")
    history = q.query_history(omop, analyst)
    assert [h["status"] for h in history] == ["rejected", "allowed"]
    saved = q.save_query(omop, analyst, "eunomia", "births", "SELECT year_of_birth FROM person")
    assert [s["name"] for s in q.list_saved_queries(omop, analyst)] == ["births"]
    q.delete_saved_query(omop, analyst, saved)
    assert q.list_saved_queries(omop, analyst) == []
    schema = q.schema_for(omop, analyst, "eunomia")
    assert [c for c, _ in schema["person"]] == ["person_id", "gender_concept_id",
                                                "year_of_birth", "race_concept_id",
                                                "ethnicity_concept_id"]
    assert q.can_download(omop, analyst, "eunomia") is False  # row-level: download none
    aggregate = make_analyst(omop, team="beta-bio", tier="aggregate")
    assert q.can_download(omop, aggregate, "eunomia") is True
    counted = q.run_query(omop, aggregate, "eunomia", "SELECT count(*) FROM person")
    assert q.can_download(omop, aggregate, "eunomia", counted) is True
    rows = q.run_query(omop, analyst, "eunomia", "SELECT 1")
    assert q.can_download(omop, aggregate, "eunomia", rows) is False  # another tier's result


def test_cli_query_json_contract(omop, capsys):
    make_analyst(omop)
    env = {"PORTAL_HOME": str(omop.settings.home)}
    code = main(["query", "--user", "analyst@acme-health.example", "--dataset", "eunomia",
                 "--sql", "SELECT count(*) AS n FROM person", "--format", "json"], env)
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {"columns", "rows", "row_count", "truncated", "suppressed", "query_id"} <= set(out)
    assert out["rows"] == [[200]] and out["columns"] == ["n"]
    code = main(["query", "--user", "analyst@acme-health.example", "--dataset", "eunomia",
                 "--sql", "ATTACH '/etc/x' AS x", "--format", "json"], env)
    out = json.loads(capsys.readouterr().out)
    assert code == 2
    assert out["error"]["code"] == "statement_not_allowed"
    assert "/etc" not in out["error"]["message"]


def test_dp_budget_exhaustion_is_refused_audited_and_replays_still_answer(omop, tmp_path):
    ctx = Context(settings_with_policies(omop.settings, tmp_path / "p", dp_tier(budget_rho=1.0)),
                  omop.conn)
    analyst = make_analyst(ctx, team="beta-bio", tier="aggregate")
    colleague = make_analyst(ctx, team="beta-bio", tier=None, email="cto@beta-bio.example")
    first = q.run_query(ctx, analyst, "eunomia", "SELECT count(DISTINCT person_id) FROM person")
    q.run_query(ctx, colleague, "eunomia", "SELECT count(*) FROM person")  # the team's budget
    with pytest.raises(QuotaExceeded) as info:
        q.run_query(ctx, analyst, "eunomia", "SELECT count(*) FROM condition_occurrence")
    assert info.value.code == "privacy_budget_exhausted"
    event = events(ctx)[0]
    assert (event.decision, event.reason) == ("denied", "privacy_budget_exhausted")
    again = q.run_query(ctx, colleague, "eunomia",  # identical up to spacing and case
                        "select count(DISTINCT person_id)   from person")
    assert again.rows == first.rows and again.privacy["cached"] is True
    assert again.privacy["spent_rho"] == 1.0 and again.privacy["queries_left"] == 0
    assert q.query_budget(ctx, analyst, "eunomia")["privacy"]["left_rho"] == 0.0


def test_dp_schema_errors_are_shown_and_not_charged(omop, tmp_path):
    ctx = Context(settings_with_policies(omop.settings, tmp_path / "p", dp_tier()), omop.conn)
    analyst = make_analyst(ctx, team="beta-bio", tier="aggregate")
    with pytest.raises(Rejected) as info:
        q.run_query(ctx, analyst, "eunomia", "SELECT count(shoe_size) FROM person")
    assert info.value.code == "schema_error" and "shoe_size" in info.value.message
    assert q.query_budget(ctx, analyst, "eunomia")["privacy"]["spent_rho"] == 0.0


def test_cli_prints_dp_estimates_with_their_half_widths(omop, capsys):
    make_analyst(omop, team="beta-bio", tier="aggregate")
    env = {"PORTAL_HOME": str(omop.settings.home)}
    sql = "SELECT gender_concept_id, count(DISTINCT person_id) AS n FROM person GROUP BY 1"
    assert main(["query", "--user", "analyst@beta-bio.example", "--dataset", "eunomia",
                 "--sql", sql, "--format", "csv"], env) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "gender_concept_id,n,n ± (95%)"
    assert [line.split(",")[0] for line in lines[1:]] == ["8507", "8532"]
    assert main(["query", "--user", "analyst@beta-bio.example", "--dataset", "eunomia",
                 "--sql", sql], env) == 0  # the same query again: replayed
    assert "differentially private" in capsys.readouterr().out


def test_cli_query_table_and_csv_formats(omop, capsys):
    make_analyst(omop)
    env = {"PORTAL_HOME": str(omop.settings.home)}
    assert main(["query", "--user", "analyst@acme-health.example", "--dataset", "eunomia",
                 "--sql", "SELECT 1 AS one", "--format", "csv"], env) == 0
    assert capsys.readouterr().out.splitlines() == ["one", "1"]
    assert main(["query", "--user", "analyst@acme-health.example", "--dataset", "eunomia",
                 "--sql", "SELECT 1 AS one"], env) == 0
    assert "1 row(s)" in capsys.readouterr().out


def test_real_eunomia_release_row_level_and_aggregate(released_ctx):
    analyst = make_analyst(released_ctx)
    result = q.run_query(released_ctx, analyst, "eunomia", "SELECT count(*) FROM person")
    assert 0 < result.rows[0][0] < 2694  # the dev partition only
    schema = q.schema_for(released_ctx, analyst, "eunomia")
    assert not any(c.endswith("_source_value") for cols in schema.values() for c, _ in cols)
    aggregate = make_analyst(released_ctx, team="beta-bio", tier="aggregate")
    by_gender = q.run_query(released_ctx, aggregate, "eunomia",
                            "SELECT gender_concept_id, count(*) FROM person GROUP BY 1")
    # differentially private: both public keys, noisy counts with their 95% half-widths
    assert [row[0] for row in by_gender.rows] == [8507, 8532]
    exact = {8507: 0, 8532: 0}
    with duckdb.connect(str(current_release(released_ctx.conn, released_ctx.settings,
                                            "eunomia").dev_path), read_only=True) as con:
        exact.update(con.execute("SELECT gender_concept_id, count(*) FROM person "
                                 "GROUP BY 1").fetchall())
    for (key, noisy), (_, width) in zip(by_gender.rows, by_gender.half_widths, strict=True):
        assert abs(noisy - exact[key]) <= 4 * width  # 4 half-widths: fails 1 in 10^9 or so
    assert by_gender.privacy["cost_rho"] == 0.5 and by_gender.privacy["spent_rho"] == 0.5


def test_real_omop_synth_three_way_join_runs_governed(released_ctx):
    analyst = make_analyst(released_ctx, dataset="omop_synth")
    result = q.run_query(released_ctx, analyst, "omop_synth",
                         "SELECT p.gender_concept_id, count(DISTINCT p.person_id) AS persons "
                         "FROM person p JOIN drug_exposure d ON d.person_id = p.person_id "
                         "JOIN condition_occurrence c ON c.person_id = p.person_id "
                         "GROUP BY 1 ORDER BY 1")
    assert result.row_count >= 1
    assert sum(row[1] for row in result.rows) <= 2000


def test_budget_per_day_is_enforced(omop, tmp_path):
    settings = settings_with_policies(omop.settings, tmp_path / "p",
                                      {"per_day: 2000": "per_day: 1"})
    ctx = Context(settings, omop.conn)
    analyst = make_analyst(ctx)
    q.run_query(ctx, analyst, "eunomia", "SELECT 1")
    with pytest.raises(QuotaExceeded) as info:
        q.run_query(ctx, analyst, "eunomia", "SELECT 1")
    assert "per day" in info.value.message


def test_saved_query_needs_a_name_and_belongs_to_its_owner(omop):
    from portal.errors import InvalidInput, NotFound

    analyst = make_analyst(omop)
    other = make_analyst(omop, team="beta-bio", tier=None)
    with pytest.raises(InvalidInput):
        q.save_query(omop, analyst, "eunomia", " ", "SELECT 1")
    saved = q.save_query(omop, analyst, "eunomia", "mine", "SELECT 1")
    with pytest.raises(NotFound):
        q.delete_saved_query(omop, other, saved)
    assert q.list_saved_queries(omop, other) == []
    assert q.query_history(omop, other) == []


def test_internal_failure_exits_1_with_no_internals_and_is_audited(omop, capsys):
    from portal.catalog.releases import current_release

    make_analyst(omop)
    release = current_release(omop.conn, omop.settings, "eunomia")
    release.dev_path.write_bytes(b"not a database")
    env = {"PORTAL_HOME": str(omop.settings.home)}
    code = main(["query", "--user", "analyst@acme-health.example", "--dataset", "eunomia",
                 "--sql", "SELECT 1", "--format", "json"], env)
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["error"]["code"] == "internal_error"
    assert str(omop.settings.home) not in out["error"]["message"]
    assert events(omop)[0].decision == "failed"
