"""Checks and figures staff read before releasing a validation report (streamlit-free)."""

from __future__ import annotations

import pytest

from portal.ui.review_checks import (
    check_rows,
    exact,
    overall_rows,
    review_checks,
    subgroup_rows,
    threshold_rows,
)

FLAG = {"check": "singling_out", "flagged": True, "detail": "3 held-out rows beyond 0.9",
        "rows_beyond_threshold": 3, "minimum": 11}


@pytest.mark.parametrize("run, report", [
    ({"checks": [FLAG]}, None),                                   # a list on the run record
    ({"flags": {"singling_out": {k: v for k, v in FLAG.items() if k != "check"}}}, None),
    ({}, {"checks": [FLAG]}),                                     # on the report
    ({}, {"privacy": {"singling_out": FLAG}}),                    # one entry in a block
    ({"singling_out": {**FLAG, "flagged": None, "status": "flagged"}}, None),
], ids=["run-list", "run-mapping", "report-list", "report-privacy", "status-word"])
def test_flags_are_found_wherever_the_run_or_report_carries_them(run, report):
    [check] = review_checks(run, report)
    assert check.name == "singling_out" and check.flagged
    assert check.detail == "3 held-out rows beyond 0.9"
    assert check.figures["rows_beyond_threshold"] == 3 and check.figures["minimum"] == 11


def test_flagged_checks_come_first_and_passed_ones_are_kept():
    run = {"checks": [{"name": "near_injective_scores", "passed": True, "distinct_ratio": 0.31},
                      FLAG], "flags": ["report withheld until a staff decision"]}
    found = review_checks(run, None)
    assert [c.flagged for c in found] == [True, True, False]
    assert {c.name for c in found} == {"singling_out", "flag", "near_injective_scores"}
    rows = check_rows(found)
    assert rows[-1] == {"check": "near_injective_scores", "result": "passed", "detail": "",
                        "figures": "distinct_ratio 0.31"}


def test_a_run_without_checks_has_none():
    assert review_checks({"id": 1, "status": "awaiting_review"}, {"metrics": {}}) == []


def test_staff_see_exact_figures_never_rounded():
    assert exact(0.8123456789012345) == "0.8123456789012345"
    figures = {"overall": {"n": 137, "positives": 51,
                           "auroc": {"value": 0.98765432, "lower": 0.9612, "upper": 1.0},
                           "calibration": {"intercept": {"value": -0.0123456}}},
               "thresholds": [{"threshold": 0.5, "sensitivity": {"value": 0.9411764705882353},
                               "counts": {"tp": 48, "fp": 2, "tn": 84, "fn": 3}}],
               "subgroups": [{"attribute": "age", "level": "<40", "suppressed": True,
                              "reason": "fewer than 20 cases: figures suppressed"},
                             {"attribute": "age", "level": "40+", "n": 120,
                              "auroc": {"value": 0.97}}]}
    overall = {r["figure"]: r for r in overall_rows(figures)}
    assert overall["AUROC (DeLong)"]["value"] == "0.98765432"
    assert overall["calibration intercept"]["value"] == "-0.0123456"
    assert overall["cases"]["value"] == "137"
    [threshold] = threshold_rows(figures)
    assert threshold["sensitivity"] == "0.9411764705882353"
    assert threshold["counts"] == "tp 48, fp 2, tn 84, fn 3"
    small, large = subgroup_rows(figures)
    assert small["cases"] == "suppressed" and large["auroc"] == "0.97"


def test_the_portal_singling_out_check_on_run_and_report_is_one_named_entry():
    check = {"flagged": True, "reasons": ["3 row(s) at or above the threshold 0.9 (minimum 11)",
                                          "2 pairs of distinct scores differ by less"],
             "signals": {"rows": 137, "distinct_ratio": 0.876, "threshold_tails": [0.9]}}
    [found] = review_checks({"singling_out": check, "flagged": True},
                            {"review": {"singling_out": check}})
    assert found.name == "singling_out" and found.flagged
    assert found.detail == ("3 row(s) at or above the threshold 0.9 (minimum 11); "
                            "2 pairs of distinct scores differ by less")
    assert found.figures == {"rows": 137, "distinct_ratio": 0.876, "threshold_tails": [0.9]}
    assert check_rows([found])[0]["figures"] == "rows 137, distinct_ratio 0.876, threshold_tails 0.9"
