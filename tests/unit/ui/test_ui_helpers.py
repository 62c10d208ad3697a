"""The streamlit-free helpers behind the pages: escaping, CSV export, result display."""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

import pytest

from portal.ui import results
from portal.ui.csvexport import neutralise, to_csv
from portal.ui.text import md_escape
from portal.ui.workspace import dataset_labels, with_linked_dataset


@pytest.mark.parametrize("hostile", [
    "<img src=x onerror=alert(1)>", "[click](javascript:alert(1))", "**bold** _it_",
    "$x^2$", ":red[alert]", "`code`", "# heading", "![i](http://x/y.png)",
])
def test_md_escape_leaves_no_unescaped_markdown_character(hostile):
    escaped = md_escape(hostile)
    for i, char in enumerate(escaped):
        if char in "<>[]()*_`#$:!":
            assert escaped[i - 1] == "\\", (hostile, escaped)


@pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(A1)",
                                  "\tx", "\rx"])
def test_csv_export_neutralises_formula_cells(cell):
    assert neutralise(cell).startswith("'")


def test_csv_export_round_trips_plain_values_and_json_details():
    text = to_csv(["a", "details"], [{"a": "x,y", "details": {"k": 1}}, {"a": None}])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["a", "details"], ["x,y", '{"k": 1}'], ["", ""]]


def _result(**kw):
    base = dict(columns=["n", "n"], rows=[[1, 2], [None, None]], truncated=False,
                suppressed=0, suppressed_cells=0, row_suppressed=[], cell_suppressed=[],
                result_mode="rows")
    base.update(kw)
    return SimpleNamespace(**base)


def test_duplicate_result_columns_get_unique_names():
    assert results.unique_columns(["n", "n", "x", "n"]) == ["n", "n (2)", "x", "n (3)"]


def test_suppressed_rows_and_cells_are_marked_never_zero():
    res = _result(row_suppressed=[False, True], cell_suppressed=[[False, True], [True, True]],
                  suppressed=1, suppressed_cells=1, result_mode="aggregate")
    rows = results.display_rows(res)
    assert rows == [{"n": 1, "n (2)": results.SUPPRESSED},
                    {"n": results.SUPPRESSED, "n (2)": results.SUPPRESSED}]
    levels = [level for level, _ in results.notices(res)]
    assert levels == ["info", "info", "info"]


def test_truncation_notice_is_a_warning():
    notes = results.notices(_result(truncated=True), max_rows=2)
    assert notes[0][0] == "warning" and "Truncated" in notes[0][1]


def test_numeric_columns_ignore_suppressed_markers_and_text():
    rows = [{"a": "x", "b": 1, "c": results.SUPPRESSED}, {"a": "y", "b": 2.5, "c": 3}]
    assert results.numeric_columns(rows) == ["b", "c"]


def _grant(dataset, status, gid, days=10):
    return {"id": gid, "dataset_id": dataset, "tier": "row-level", "effective_status": status,
            "days_left": days}


def test_dataset_labels_prefer_the_active_grant_and_list_revoked_ones():
    labels = dataset_labels([_grant("wdbc", "revoked", 3), _grant("eunomia", "revoked", 2),
                             _grant("eunomia", "active", 1, 12)])
    assert labels == {"eunomia": "eunomia · row-level · 12 days left",
                      "wdbc": "wdbc · row-level · revoked"}


def test_deep_linked_dataset_comes_first_and_is_bounded():
    assert with_linked_dataset({"a": "A", "b": "B"}, "b") == ["b", "a"]
    assert with_linked_dataset({"a": "A"}, "x" * 500)[0] == "x" * 64
    assert with_linked_dataset({"a": "A"}, None) == ["a"]
