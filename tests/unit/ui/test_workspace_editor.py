"""The workspace editor's event handling, name insertion and completions, the grid's text ids
and the Parquet export — without a browser (the Chromium journey drives the real editor)."""

from __future__ import annotations

import io

import polars as pl
import pytest

from portal.ui import editor, results
from portal.ui.csvexport import to_csv, to_parquet
from portal.ui.schema_panel import matches

SCHEMA = {"person": [("person_id", "BIGINT"), ("year_of_birth", "INTEGER")],
          "condition_occurrence": [("person_id", "BIGINT"), ("condition_concept_id", "BIGINT")]}


def _event(id_, text, kind="change", cursor=None):
    return {"id": id_, "type": kind, "lang": "sql", "text": text, "selected": "",
            "cursor": cursor or {"row": 0, "column": len(text)}}


def test_a_new_change_event_updates_the_text_and_a_repeated_one_changes_nothing():
    state: dict = {}
    assert editor.apply_event(state, _event("a1", "SELECT 1")) == editor.EditorState("SELECT 1")
    state[editor.TEXT_KEY] = "SELECT 2"  # loaded from history since
    assert editor.apply_event(state, _event("a1", "SELECT 1")).sql == "SELECT 2"


def test_the_components_initial_value_changes_nothing():
    state = {editor.TEXT_KEY: "SELECT 3"}
    initial = {"id": "", "type": "", "lang": "", "text": "", "selected": "", "cursor": ""}
    assert editor.apply_event(state, initial) == editor.EditorState("SELECT 3")


def test_ctrl_enter_asks_to_run_until_it_has_run_even_across_an_interrupting_rerun():
    state: dict = {}
    assert editor.apply_event(state, _event("s1", "SELECT 1", "submit")).submitted
    # the editor's debounced change (same text) interrupts the run: it is asked again
    assert editor.apply_event(state, _event("c2", "SELECT 1")).submitted
    state.pop("_ws_editor_run")  # what editor.ran() does once the result is kept
    assert not editor.apply_event(state, _event("c2", "SELECT 1")).submitted


def test_editing_after_ctrl_enter_drops_the_run_request():
    state: dict = {}
    editor.apply_event(state, _event("s1", "SELECT 1", "submit"))
    assert not editor.apply_event(state, _event("c2", "SELECT 12")).submitted


@pytest.mark.parametrize(("sql", "cursor", "expected"), [
    ("", None, "person"),
    ("SELECT * FROM ", None, "SELECT * FROM person"),
    ("SELECT * FROM", None, "SELECT * FROM person"),
    ("SELECT  FROM t", {"row": 0, "column": 7}, "SELECT person FROM t"),
    ("SELECT a,\nFROM t", {"row": 1, "column": 0}, "SELECT a,\nperson FROM t"),
    ("SELECT count(", {"row": 0, "column": 13}, "SELECT count(person"),
    ("SELECT 1", {"row": 9, "column": 0}, "SELECT 1 person"),  # out of range: the end
])
def test_insert_at_the_cursor_keeps_words_apart(sql, cursor, expected):
    assert editor.insert_at(sql, "person", cursor) == expected


def test_completions_offer_each_table_and_each_column_once():
    items = editor.completions(SCHEMA)
    assert [i["value"] for i in items if i["meta"] == "table"] == ["person",
                                                                   "condition_occurrence"]
    columns = {i["value"]: i["meta"] for i in items if i["meta"] != "table"}
    assert columns == {"person_id": "bigint · 2 tables", "year_of_birth": "integer · person",
                       "condition_concept_id": "bigint · condition_occurrence"}


def test_ids_and_integers_beyond_two_to_the_53_are_text():
    rows = [{"person_id": 7205759403792793, "n": 12, "big": 2**60, "flag": True,
             "gender_concept_id": 8507, "x": 1.5}]
    shown = results.with_text_ids(rows)[0]
    assert shown == {"person_id": "7205759403792793", "n": 12, "big": str(2**60), "flag": True,
                     "gender_concept_id": "8507", "x": 1.5}


def test_parquet_export_keeps_types_and_never_turns_a_suppressed_cell_into_zero():
    columns = ["gender", "n", "note"]
    rows = [{"gender": "8507", "n": 1015, "note": {"a": 1}},
            {"gender": "8532", "n": results.SUPPRESSED, "note": None}]
    frame = pl.read_parquet(io.BytesIO(to_parquet(columns, rows)))
    assert frame.columns == columns
    assert frame["n"].to_list() == ["1015", "[suppressed]"]
    assert frame["gender"].to_list() == ["8507", "8532"]
    assert frame["note"].to_list() == ['{"a": 1}', None]
    typed = pl.read_parquet(io.BytesIO(to_parquet(["n"], [{"n": 1}, {"n": 2}])))
    assert typed["n"].dtype == pl.Int64
    assert to_csv(["n"], [{"n": "=cmd"}]) == "n\n'=cmd\n"


def test_schema_search_matches_tables_columns_descriptions_and_classifications():
    found = {"tables": [
        {"name": "person", "description": "One row per person", "rows": 10, "columns": [
            {"name": "person_id", "type": "BIGINT", "classification": "key",
             "description": "Person key"},
            {"name": "year_of_birth", "type": "INTEGER", "classification": "quasi_identifier",
             "description": "Year of birth"}]},
        {"name": "drug_exposure", "description": "Drugs", "rows": 5, "columns": [
            {"name": "drug_concept_id", "type": "BIGINT", "classification": "clinical",
             "description": "Drug"}]}]}
    tables, columns = matches(found, "BIRTH")
    assert [t["name"] for t in tables] == ["person"]
    assert [c["name"] for c in columns] == ["year_of_birth"]
    tables, columns = matches(found, "drug")
    assert [t["name"] for t in tables] == ["drug_exposure"] and len(columns) == 1
    assert len(matches(found, "quasi_identifier")[1]) == 1
    assert len(matches(found, "")[1]) == 3


def test_result_headers_are_readable_and_unique():
    assert results.unique_columns(["count_star()", "n", "n", ""]) == ["count(*)", "n", "n (2)",
                                                                      "?"]
