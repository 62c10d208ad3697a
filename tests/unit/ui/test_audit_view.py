"""Audit events as readable fields and the date picker as log filters (streamlit-free)."""

from __future__ import annotations

import datetime as dt

from portal.ui import audit_view


def test_details_become_named_fields_not_json():
    details = {"query_id": "q1", "rows": 12_345, "truncated": False,
               "limits": {"max_rows": 5000, "seconds": 30}, "tables": ["person", "drug_era"],
               "filters": {}, "steps": [{"name": "preflight", "ms": 3}, "cached"]}
    assert audit_view.fields(details) == [
        ("query id", "q1"), ("rows", "12,345"), ("truncated", "no"),
        ("limits › max rows", "5000"), ("limits › seconds", "30"),
        ("tables", "person, drug_era"), ("filters", "—"),
        ("steps 1 › name", "preflight"), ("steps 1 › ms", "3"), ("steps 2", "cached")]


def test_the_grid_summary_is_one_shortened_line():
    long = {f"field_{i}": "x" * 20 for i in range(20)}
    text = audit_view.summary(long)
    assert len(text) == audit_view.SUMMARY_CHARS and text.endswith("…")
    assert audit_view.summary({}) == ""


def test_one_event_lists_its_fields_then_its_details():
    event = {"id": 7, "at": "2026-12-02T10:00:00Z", "actor": "a@x.example", "team": None,
             "action": "query.run", "target": "dataset:eunomia", "decision": "denied",
             "reason": "grant_revoked", "details": {"sql_sha256": "ab"}}
    rows = audit_view.event_rows(event)
    assert rows[0] == {"field": "id", "value": "7"}
    assert {"field": "team", "value": "—"} in rows
    assert rows[-1] == {"field": "sql sha256", "value": "ab"}


def test_date_range_covers_whole_days_and_a_half_picked_range_is_one_day():
    day, later = dt.date(2026, 12, 1), dt.date(2026, 12, 3)
    assert audit_view.date_bounds(()) == (None, None)
    assert audit_view.date_bounds(None) == (None, None)
    assert audit_view.date_bounds((day,)) == ("2026-12-01", "2026-12-02")
    assert audit_view.date_bounds((day, later)) == ("2026-12-01", "2026-12-04")
