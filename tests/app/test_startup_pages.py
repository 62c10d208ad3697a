"""AppTest of the startup pages against real releases: what a member sees, and refusals."""

from __future__ import annotations

from portal import audit
from portal.services import query
from tests.app.helpers import app, claims, error_codes, texts
from tests.factories_access import make_grant

FOUNDER = "founder@gamma-ai.example"
ANALYST = "analyst@acme-health.example"
PURPOSE = "Estimate GI bleeding after NSAID exposure to calibrate a triage model for our product."
HOSTILE = "<img src=x onerror=alert(1)>"


def plain_editor(at):
    """Switch the workspace to its plain text editor (AppTest cannot drive the code editor's
    front-end; the Chromium journey does)."""
    if not at.text_area or "ws_sql" not in [t.key for t in at.text_area]:
        at.toggle(key="ws_plain_editor").set_value(True).run()
    return at


def run_sql(at, sql: str):
    plain_editor(at)
    at.text_area(key="ws_sql").input(sql)
    at.button(key="ws_run").click().run()
    return at


def test_catalog_shows_the_card_tables_report_and_tiers(released):
    at = app("catalog.py", claims(FOUNDER))
    at.run()
    assert not at.exception
    shown = texts(at)
    assert "Eunomia GiBleed" in shown and "Tables and columns" in shown
    assert "quasi_identifier" in shown and "row-level" in shown and "aggregate" in shown
    assert "De-identification checks passed" in shown
    assert "suppressed" in shown  # the chart's small-cell note


def test_request_access_submits_and_lists_the_request(released):
    at = app("request_access.py", claims(FOUNDER))
    at.run()
    at.selectbox(key="request_dataset").select("eunomia").run()
    at.selectbox(key="request_tier").select("row-level").run()
    at.text_area(key="request_purpose").input(PURPOSE)
    at.checkbox(key="request_terms").check()
    at.button[0].click().run()
    assert not at.exception
    assert any("Request 1 submitted" in s.value for s in at.success)
    assert "submitted" in texts(at)


def test_request_access_too_short_purpose_is_refused_with_its_code(released):
    at = app("request_access.py", claims(FOUNDER))
    at.run()
    at.text_area(key="request_purpose").input("too short")
    at.checkbox(key="request_terms").check()
    at.button[0].click().run()
    assert error_codes(at) == ["purpose_too_short"]


def test_request_access_without_agreeing_to_the_terms_is_refused(released):
    at = app("request_access.py", claims(FOUNDER))
    at.run()
    at.text_area(key="request_purpose").input(PURPOSE)
    at.button[0].click().run()
    assert error_codes(at) == ["terms_not_agreed"]


def test_hostile_purpose_renders_as_text_for_reviewers(released):
    at = app("request_access.py", claims(FOUNDER))
    at.run()
    at.text_area(key="request_purpose").input(PURPOSE + " " + HOSTILE)
    at.checkbox(key="request_terms").check()
    at.button[0].click().run()
    review = app("review_queue.py", claims("staff@platform.example"))
    review.run()
    assert any(HOSTILE in t.value for t in review.text)  # st.text: never markup
    assert not any(HOSTILE in m.value for m in review.markdown)


def test_workspace_without_a_grant_says_so(released):
    at = app("workspace.py", claims(FOUNDER))
    at.run()
    assert "no grant yet" in texts(at)
    assert not at.text_area


def test_workspace_runs_a_query_and_shows_results_without_download(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    at = app("workspace.py", claims(FOUNDER))
    at.run()
    assert "person" in set(at.dataframe[0].value["table"])
    run_sql(at, "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY 1 ORDER BY 1")
    assert not at.exception and not at.error
    frame = at.dataframe[2].value
    assert list(frame.columns) == ["gender_concept_id", "n"] and len(frame) == 2
    assert "does not allow downloading" in texts(at)
    assert not at.get("download_button")
    assert query.query_history(released, _founder(released))[0]["status"] == "allowed"


def test_workspace_truncation_is_never_silent(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    at = run_sql(_workspace(), "SELECT * FROM condition_occurrence")
    assert any("Truncated" in w.value for w in at.warning)


def test_workspace_aggregate_tier_allows_download(released):
    make_grant(released, "gamma-ai", "eunomia", "aggregate")
    at = run_sql(_workspace(), "SELECT gender_concept_id, count(*) FROM person GROUP BY 1")
    assert not at.error
    assert [b.label for b in at.get("download_button")] == ["Download CSV", "Download Parquet"]
    # differentially private: estimates with their half-widths, and the budget gauge
    assert "Differentially private" in texts(at) and "cost ρ 0.5" in texts(at)
    frame = next(d.value for d in at.dataframe if "gender_concept_id" in d.value.columns)
    assert list(frame.columns) == ["gender_concept_id", "count_star()",
                                   "count_star() ± (95%)"]
    assert list(frame["gender_concept_id"]) == ["8507", "8532"]  # ids shown as text
    assert all(w > 0 for w in frame["count_star() ± (95%)"])
    gauge = [p.proto.text for p in at.get("progress")]
    assert any("ρ 0.5 of 5 spent, 9 queries left" in t for t in gauge), gauge


def test_workspace_shows_cost_and_precision_before_running(released):
    make_grant(released, "gamma-ai", "eunomia", "aggregate")
    at = plain_editor(_workspace())
    at.text_area(key="ws_sql").input("SELECT count(DISTINCT person_id) FROM person")
    at.button(key="dp_check").click().run()
    assert not at.error and "costs ρ 0.5 (10 queries left)" in texts(at)
    precision = next(d.value for d in at.dataframe if "± (95%)" in d.value.columns)
    assert list(precision["± (95%)"]) == [2]  # ρ 0.5 on one count of persons: σ = 1
    assert query.query_history(released, _founder(released)) == []  # nothing ran


def test_workspace_query_with_an_expired_grant_is_refused_with_the_reason(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level", status="expired")
    at = _workspace()
    assert at.selectbox(key="ws_dataset").options == ["eunomia · row-level · expired"]
    run_sql(at, "SELECT count(*) FROM person")
    assert "grant_expired" in error_codes(at)
    assert not [f for f in at.dataframe if "count" in " ".join(map(str, f.value.columns))]


def test_workspace_query_after_revocation_is_refused_with_the_staff_reason(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level", status="revoked",
               reason="Purpose changed")
    at = run_sql(_workspace(), "SELECT count(*) FROM person")
    assert "grant_revoked" in error_codes(at)
    assert "Purpose changed" in texts(at)


def test_workspace_rejected_sql_shows_code_and_sentence_without_internals(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    at = run_sql(_workspace(), "SELECT * FROM read_csv('/etc/passwd')")
    codes = error_codes(at)
    assert codes and codes[-1] not in ("internal_error", "")
    shown = texts(at)
    assert "/etc/passwd" not in "".join(e.value for e in at.error)
    assert "Traceback" not in shown and str(released.settings.home) not in shown


def test_workspace_tampered_dataset_link_is_refused_by_the_service_and_audited(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    at = app("workspace.py", claims(FOUNDER))
    at.query_params["dataset"] = "wdbc"  # a dataset the team holds no grant for
    at.run()
    assert at.selectbox(key="ws_dataset").value == "wdbc"
    run_sql(at, "SELECT count(*) FROM cases")
    assert "no_grant" in error_codes(at)
    events = audit.list_events(released.conn, action="query.run", decision="denied")
    assert events and events[0].reason == "no_grant" and events[0].actor == FOUNDER


def test_workspace_saves_a_query_and_lists_it(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    at = plain_editor(_workspace())
    at.text_area(key="ws_sql").input("SELECT count(*) FROM person")
    at.text_input(key="ws_save_name").input("persons")
    at.button(key="ws_save").click().run()
    assert any("Saved as persons" in s.value for s in at.success)
    at.run()
    assert "persons (yours)" in texts(at)


def test_other_teams_member_never_sees_this_teams_requests(released):
    founder = app("request_access.py", claims(FOUNDER))
    founder.run()
    founder.text_area(key="request_purpose").input(PURPOSE)
    founder.checkbox(key="request_terms").check()
    founder.button[0].click().run()
    other = app("request_access.py", claims(ANALYST))
    other.run()
    assert FOUNDER not in texts(other)
    assert not other.dataframe


def test_home_shows_grants_with_days_left_and_recent_queries(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level", days=30)
    run_sql(_workspace(), "SELECT count(*) FROM person")
    at = app("home.py", claims(FOUNDER))
    at.run()
    assert not at.exception
    grants = at.dataframe[0].value
    assert grants.iloc[0]["dataset"] == "eunomia" and grants.iloc[0]["days left"] in (29, 30)
    assert "SELECT count(*) FROM person" in texts(at)


def _workspace():
    at = app("workspace.py", claims(FOUNDER))
    at.run()
    return at


def _founder(ctx):
    from portal.identity import principal_for_email
    return principal_for_email(ctx.conn, FOUNDER)


def test_revocation_takes_effect_at_the_next_rerun_despite_the_schema_cache(released):
    from portal.identity import principal_for_email
    from portal.services import access

    grant = make_grant(released, "gamma-ai", "eunomia", "row-level")
    at = _workspace()
    assert "person" in set(at.dataframe[0].value["table"])
    staff = principal_for_email(released.conn, "staff@platform.example")
    access.revoke_grant(released, staff, grant.id, "Audit finding")
    at.run()
    assert "grant_revoked" in error_codes(at)
    assert not at.dataframe


def test_following_another_teams_request_by_link_is_refused_and_audited(released):
    from portal.identity import principal_for_email
    from portal.services import access

    analyst = principal_for_email(released.conn, ANALYST)
    theirs = access.submit_request(released, analyst, "eunomia", "row-level", PURPOSE, True)
    at = app("request_access.py", claims(FOUNDER))
    at.query_params["request"] = str(theirs["id"])
    at.run()
    assert "not_your_request" in error_codes(at)
    assert ANALYST not in texts(at) and PURPOSE not in texts(at)
    events = audit.list_events(released.conn, action="request.view", decision="denied")
    assert events and events[0].actor == FOUNDER and events[0].reason == "not_your_request"


def test_following_own_request_shows_its_state_and_reviews(released):
    from portal.identity import principal_for_email
    from portal.services import access

    founder = principal_for_email(released.conn, FOUNDER)
    mine = access.submit_request(released, founder, "eunomia", "row-level", PURPOSE, True)
    staff = principal_for_email(released.conn, "staff@platform.example")
    access.deny_request(released, staff, mine["id"], "Please name the outcome.")
    at = app("request_access.py", claims(FOUNDER))
    at.run()
    assert "Reason: Please name the outcome." in texts(at)
    assert "denied" in texts(at)


def test_staff_can_browse_the_catalog_without_internal_paths(released):
    at = app("catalog.py", claims("staff@platform.example"))
    at.run()
    assert not at.exception and "Eunomia GiBleed" in texts(at)
    assert str(released.settings.home) not in texts(at)


def test_home_with_only_an_expired_grant_shows_no_active_grant(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level", status="expired")
    at = app("home.py", claims(FOUNDER))
    at.run()
    assert not at.exception
    assert "No grants here." in texts(at)
