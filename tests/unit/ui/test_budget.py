"""The DP budget's text in the UI, and DP results in the grid (estimate, then ± half-width)."""

from __future__ import annotations

from portal.query.executor import QueryResult
from portal.ui import budget, results

PRIVACY = {"budget_rho": 5.0, "spent_rho": 1.5, "left_rho": 3.5, "rho_per_query": 0.5,
           "queries_left": 7, "queries_charged": 3, "delta": 1e-6, "epsilon_budget": 22.0,
           "epsilon_spent": 10.6, "cost_rho": 0.5, "cached": False}


def test_gauge_says_what_is_spent_and_left():
    assert budget.gauge_text(PRIVACY).startswith(
        "Privacy budget: ρ 1.5 of 5 spent, 7 queries left at ρ 0.5 each")
    assert budget.gauge_fraction(PRIVACY) == 0.3


def test_preview_text_for_new_cached_and_non_personal_queries():
    preview = {"cost_rho": 0.5, "cached": False, "groups": "selected",
               "selection_threshold": 26, "budget": PRIVACY,
               "columns": [{"column": "n", "kind": "persons", "half_width": 3.9199}]}
    assert budget.preview_text(preview) == (
        "Running this query costs ρ 0.5 (7 queries left); groups with fewer than about 26 "
        "persons are not shown.")
    assert budget.precision_rows(preview) == [
        {"column": "n", "kind": "persons", "± (95%)": 3.92, "note": ""}]
    assert "costs nothing" in budget.preview_text(dict(preview, cached=True))
    assert "exactly" in budget.preview_text(dict(preview, columns=[]))


def test_dp_results_show_each_estimate_with_its_half_width():
    result = QueryResult(columns=["sex", "n"], rows=[[8507, 101], [8532, 99]], row_count=2,
                         truncated=False, suppressed=0, query_id="q", duration_ms=1.0,
                         tier="aggregate", result_mode="aggregate",
                         row_suppressed=[False, False], cell_suppressed=[[False] * 2] * 2,
                         half_widths=[[None, 3.9199], [None, 3.9199]], privacy=PRIVACY)
    assert results.display_columns(result) == ["sex", "n", "n ± (95%)"]
    assert results.display_rows(result)[0] == {"sex": 8507, "n": 101, "n ± (95%)": 3.92}
    notice = " ".join(text for _, text in results.notices(result))
    assert "Differentially private" in notice and "cost ρ 0.5" in notice
    assert "rounded" not in notice
