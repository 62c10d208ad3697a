"""The workspace's schema browser and concept search against real releases: exactly the
extract's tables and columns with the data card's words, row counts as the tier may see them,
and concept search through the grant's extract only, parameterised and audited."""

from __future__ import annotations

import pytest

from portal import audit
from portal.errors import Denied, InvalidInput
from portal.query.extracts import extract_schema
from portal.services import workspace
from portal.services.query import extract_for
from tests.factories_query import make_analyst


def test_schema_overview_lists_every_extract_table_with_card_words_and_row_counts(released_ctx):
    analyst = make_analyst(released_ctx, tier="row-level")
    found = workspace.schema_overview(released_ctx, analyst, "eunomia")
    extract = extract_schema(extract_for(released_ctx, "eunomia", "row-level"))
    assert [t["name"] for t in found["tables"]] == list(extract)
    person = next(t for t in found["tables"] if t["name"] == "person")
    assert [c["name"] for c in person["columns"]] == [c for c, _ in extract["person"]]
    assert "month_of_birth" not in {c["name"] for c in person["columns"]}  # absent, not hidden
    by_name = {c["name"]: c for c in person["columns"]}
    assert by_name["person_id"]["classification"] == "key"
    assert "pseudonymised" in by_name["person_id"]["description"]
    assert person["description"] and person["rows"] > 1000
    assert found["result_mode"] == "rows"


def test_aggregate_tier_row_counts_are_rounded_like_its_results(released_ctx):
    analyst = make_analyst(released_ctx, tier="aggregate")
    found = workspace.schema_overview(released_ctx, analyst, "eunomia")
    assert found["result_mode"] == "aggregate"
    counts = [t["rows"] for t in found["tables"]]
    assert all(r is None or r % 5 == 0 for r in counts)


def test_schema_overview_without_a_grant_is_denied(released_ctx):
    analyst = make_analyst(released_ctx, tier=None)
    with pytest.raises(Denied):
        workspace.schema_overview(released_ctx, analyst, "eunomia")


def test_concept_search_finds_by_name_and_id_and_writes_one_event(released_ctx):
    analyst = make_analyst(released_ctx, tier="row-level")
    found = workspace.search_concepts(released_ctx, analyst, "eunomia", "hemorrhage")
    assert found["available"] and found["rows"]
    assert all("hemorrhage" in r["concept_name"].lower() for r in found["rows"])
    concept_id = str(found["rows"][0]["concept_id"])
    by_id = workspace.search_concepts(released_ctx, analyst, "eunomia", concept_id)
    assert concept_id in {str(r["concept_id"]) for r in by_id["rows"]}
    events = audit.list_events(released_ctx.conn, action="query.concepts")
    assert len(events) == 2 and events[-1].details["search"] == "hemorrhage"
    assert events[-1].details["rows_returned"] == len(found["rows"])
    assert "concept_name" not in str(events[-1].details)  # counts, never the rows


@pytest.mark.parametrize("hostile", ["%", "_", "' OR 1=1 --", "\\", "x'; DROP TABLE concept"])
def test_concept_search_text_is_a_parameter_never_sql(released_ctx, hostile):
    analyst = make_analyst(released_ctx, tier="row-level")
    found = workspace.search_concepts(released_ctx, analyst, "eunomia", hostile)
    assert all(hostile.lower() in r["concept_name"].lower() for r in found["rows"])


def test_concept_search_where_the_extract_has_no_concept_table(released_ctx):
    analyst = make_analyst(released_ctx, dataset="wdbc", tier="row-level")
    assert workspace.search_concepts(released_ctx, analyst, "wdbc", "mass") == {
        "available": False, "rows": []}


def test_concept_search_refuses_empty_text_and_no_grant_with_one_event_each(released_ctx):
    analyst = make_analyst(released_ctx, tier=None)
    with pytest.raises(InvalidInput):
        workspace.search_concepts(released_ctx, analyst, "eunomia", "  ")
    with pytest.raises(Denied):
        workspace.search_concepts(released_ctx, analyst, "eunomia", "hemorrhage")
    events = audit.list_events(released_ctx.conn, action="query.concepts")
    assert sorted(e.decision for e in events) == ["denied", "rejected"]
