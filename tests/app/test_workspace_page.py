"""AppTest of the SQL workspace per persona: the code editor by default (its front-end is
driven in tests/e2e/test_workspace_journey.py), the plain editor as the fallback, the schema
browser, history and saved queries loading with one click, team sharing, downloads only where
the tier allows, and staff refused."""

from __future__ import annotations

from portal import audit
from portal.identity import principal_for_email
from portal.services import query
from tests.app.helpers import app, claims, error_codes, texts
from tests.app.test_startup_pages import plain_editor, run_sql
from tests.factories import make_user
from tests.factories_access import make_grant

FOUNDER = "founder@gamma-ai.example"
COLLEAGUE = "cto@gamma-ai.example"
OTHER_TEAM = "analyst@acme-health.example"
LIGHT = "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY 1 ORDER BY 1"


def _open(email: str = FOUNDER):
    at = app("workspace.py", claims(email))
    at.run()
    return at


def _editor_sql(at) -> str:
    return at.text_area(key="ws_sql").value


def test_member_gets_the_code_editor_by_default_and_every_table_of_the_extract(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    at = _open()
    assert not at.exception
    assert not at.text_area  # the code editor component, not the text area
    assert "Ctrl+Enter" in texts(at)
    tables = at.dataframe[0].value
    assert {"person", "condition_occurrence", "concept"} <= set(tables["table"])
    assert tables.set_index("table").loc["person", "rows"] not in ("", "0")
    columns = at.dataframe[1].value
    person_id = columns[(columns["table"] == "person") & (columns["column"] == "person_id")]
    assert person_id.iloc[0]["classification"] == "key"
    assert "month_of_birth" not in set(columns[columns["table"] == "person"]["column"])


def test_schema_search_narrows_tables_and_columns(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    at = _open()
    at.text_input(key="ws_schema_search").input("year_of_birth").run()
    assert list(at.dataframe[0].value["table"]) == ["person"]
    assert list(at.dataframe[1].value["column"]) == ["year_of_birth"]


def test_concept_search_shows_concepts_with_ids_as_text_and_is_audited(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    at = _open()
    at.text_input(key="ws_concept_text").input("hemorrhage")
    at.button(key="FormSubmitter:ws_concept_form-Search concepts").click().run()
    assert not at.exception and not at.error
    concepts = at.dataframe[2].value
    assert len(concepts) and all(isinstance(v, str) for v in concepts["concept_id"])
    at.run()  # a rerun shows the kept answer without searching again
    assert len(audit.list_events(released.conn, action="query.concepts")) == 1


def test_results_show_ids_as_text_and_editing_clears_them(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    at = run_sql(_open(), LIGHT)
    frame = at.dataframe[2].value
    assert list(frame["gender_concept_id"]) == ["8507", "8532"]
    at.text_area(key="ws_sql").input(LIGHT + " LIMIT 1").run()
    assert "query " not in " ".join(c.value for c in at.caption)
    assert len(at.dataframe) == 2  # only the schema browser's


def test_an_error_is_cleared_by_editing_the_sql(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    at = run_sql(_open(), "SELECT * FROM read_csv('/etc/passwd')")
    assert error_codes(at)
    at.text_area(key="ws_sql").input("SELECT 1").run()
    assert not at.error


def test_a_history_row_loads_into_the_editor_with_one_click(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    at = run_sql(_open(), LIGHT)
    at.text_area(key="ws_sql").input("SELECT 2").run()
    load = [b for b in at.button if b.key and b.key.startswith("ws_load_history_")]
    assert load
    load[0].click().run()
    assert _editor_sql(at) == LIGHT


def test_a_shared_query_loads_for_a_teammate_and_not_for_another_team(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    make_grant(released, "acme-health", "eunomia", "row-level")
    make_user(released, COLLEAGUE, team="gamma-ai")
    at = plain_editor(_open())
    at.text_area(key="ws_sql").input(LIGHT)
    at.text_input(key="ws_save_name").input("persons by gender")
    at.checkbox(key="ws_save_shared").check()
    at.button(key="ws_save").click().run()
    assert any("Saved as" in s.value for s in at.success)

    mate = plain_editor(_open(COLLEAGUE))
    assert f"persons by gender (shared by {FOUNDER})" in texts(mate)
    [load] = [b for b in mate.button if b.key and b.key.startswith("ws_load_saved_")]
    load.click().run()
    assert _editor_sql(mate) == LIGHT
    other = plain_editor(_open(OTHER_TEAM))
    assert "persons by gender" not in texts(other)


def test_row_level_tier_offers_no_download(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    at = run_sql(_open(), LIGHT)
    assert not at.get("download_button")
    assert "does not allow downloading" in texts(at)


def test_aggregate_tier_offers_csv_and_parquet(released):
    make_grant(released, "gamma-ai", "eunomia", "aggregate")
    at = run_sql(_open(), "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY 1")
    assert [b.label for b in at.get("download_button")] == ["Download CSV", "Download Parquet"]
    rows = at.dataframe[0].value.set_index("table")["rows"]
    assert all(v == "few" or v.startswith("≈") for v in rows)


def test_staff_are_refused_the_workspace_and_the_attempt_audited(released):
    at = _open("staff@platform.example")
    assert "member_only" in error_codes(at)
    assert not at.dataframe and not at.text_area
    events = audit.list_events(released.conn, action="ui.page", decision="denied")
    assert events and events[0].target == "page:workspace"


def test_member_without_a_grant_is_told_how_to_get_one(released):
    at = _open(OTHER_TEAM)
    assert "no grant yet" in texts(at)
    assert not at.dataframe


def test_saved_queries_are_listed_through_the_service_for_the_owner(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    at = _open()  # binds the founder on first sign-in
    founder = principal_for_email(released.conn, FOUNDER)
    query.save_query(released, founder, "eunomia", "mine", "SELECT 1")
    at.run()
    assert "mine (yours)" in texts(at)


def test_quick_chart_is_drawn_when_asked_for_even_with_aggregate_column_names(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    at = run_sql(_open(), "SELECT gender_concept_id, count(*), sum(year_of_birth) FROM person"
                          " GROUP BY 1")
    assert not at.get("vega_lite_chart")
    at.toggle(key="ws_chart").set_value(True).run()
    at.selectbox(key="ws_chart_y").set_value("sum(year_of_birth)").run()
    assert not at.exception and at.get("vega_lite_chart")
    assert list(at.dataframe[2].value.columns) == ["gender_concept_id", "count(*)",
                                                   "sum(year_of_birth)"]


def test_the_owner_shares_and_unshares_a_saved_query_with_one_click(released):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    make_user(released, COLLEAGUE, team="gamma-ai")
    at = _open()
    founder = principal_for_email(released.conn, FOUNDER)
    saved = query.save_query(released, founder, "eunomia", "draft", LIGHT)
    at.run()
    at.button(key=f"ws_share_saved_{saved}").click().run()
    assert "shared with your team" in texts(at)
    mate = _open(COLLEAGUE)
    assert "draft (shared by" in texts(mate)
    assert not [b for b in mate.button if b.key and b.key.startswith("ws_share_saved_")]
    at.button(key=f"ws_share_saved_{saved}").click().run()
    assert "shared with your team" not in texts(at)
    mate.run()
    assert "draft" not in texts(mate)
