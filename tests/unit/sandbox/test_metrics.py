"""Metrics against scikit-learn on the same predictions, and the cases that must not be NaN."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from sandbox import metrics


def _data(n: int, seed: int, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    p = np.clip(0.3 + 0.25 * (y - 0.3) + rng.normal(0, 0.2, n), 0, 1)
    if ties:
        p = np.round(p, 1)
    return y, p.astype(np.float32).astype(float)


@pytest.mark.parametrize("n,seed,ties", [(30, 1, False), (500, 2, True), (5000, 3, False),
                                         (20000, 4, True)])
def test_auroc_auprc_brier_match_scikit_learn_to_1e9(n, seed, ties):
    y, p = _data(n, seed, ties)
    assert abs(metrics.auroc_delong(y, p)["value"] - roc_auc_score(y, p)) < 1e-9
    assert abs(metrics.average_precision(y, p) - average_precision_score(y, p)) < 1e-9
    assert abs(metrics.brier(y, p) - brier_score_loss(y, p)) < 1e-9


def test_delong_interval_matches_the_textbook_variance_on_a_small_case():
    # Hanley & McNeil style check: compute structural components by brute force.
    y, p = _data(60, 7)
    pos, neg = p[y == 1], p[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    se = np.sqrt(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg))
    result = metrics.auroc_delong(y, p)
    assert abs(result["value"] - psi.mean()) < 1e-12
    assert abs(result["se"] - se) < 1e-12
    assert result["lower"] < result["value"] < result["upper"]


def test_calibration_slope_matches_an_unpenalised_logistic_fit():
    y, p = _data(3000, 5)
    logit = np.log(p.clip(1e-10, 1 - 1e-10) / (1 - p.clip(1e-10, 1 - 1e-10)))
    reference = LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000).fit(logit[:, None], y)
    result = metrics.calibration(y, p)
    assert abs(result["slope"]["value"] - reference.coef_[0][0]) < 1e-5
    assert result["slope"]["lower"] < result["slope"]["value"] < result["slope"]["upper"]


def test_perfectly_calibrated_predictions_have_slope_near_one_and_intercept_near_zero():
    rng = np.random.default_rng(11)
    p = rng.uniform(0.05, 0.95, 50_000)
    y = (rng.random(50_000) < p).astype(float)
    result = metrics.calibration(y, p)
    assert abs(result["slope"]["value"] - 1) < 0.05
    assert abs(result["intercept"]["value"]) < 0.05


def test_single_class_holdout_gives_a_message_not_nan():
    y = np.zeros(100)
    p = np.linspace(0.01, 0.99, 100)
    report = metrics.compute(y, p, [0.5], {}, 10)
    assert report["messages"] and "one outcome class" in report["messages"][0]
    assert report["overall"]["auroc"]["value"] is None
    assert "both outcome classes" in report["overall"]["auroc"]["not_estimable"]
    json.dumps(report, allow_nan=False)  # no NaN anywhere


def test_wilson_interval_known_values_and_empty_denominator():
    result = metrics.wilson(8, 10)
    assert abs(result["lower"] - 0.4901625) < 1e-6 and abs(result["upper"] - 0.9433178) < 1e-6
    assert metrics.wilson(0, 0)["value"] is None


def test_threshold_figures_count_cases_at_or_above_the_threshold():
    y = np.array([1, 1, 0, 0, 1, 0], dtype=float)
    p = np.array([0.9, 0.5, 0.5, 0.1, 0.2, 0.7])
    t = metrics.at_threshold(y, p, 0.5)
    assert t["counts"] == {"tp": 2, "fp": 2, "tn": 1, "fn": 1}
    assert t["sensitivity"]["value"] == pytest.approx(2 / 3)
    assert t["net_benefit"] == pytest.approx(2 / 6 - 2 / 6 * 1.0)


def test_subgroups_below_minimum_size_are_suppressed_without_counts():
    y, p = _data(200, 9)
    groups = {"sex": np.array(["F"] * 195 + ["X"] * 5)}
    out = metrics.subgroup_figures(y, p, groups, min_size=10)
    small = next(s for s in out if s["level"] == "X")
    assert small["suppressed"] and "n" not in small and "auroc" not in small
    big = next(s for s in out if s["level"] == "F")
    assert big["n"] == 195 and big["auroc"]["value"] is not None


def test_reliability_bins_below_minimum_size_are_suppressed():
    y, p = _data(300, 12)
    bins = metrics.reliability(y, p, 10, min_size=25)
    assert any(b["suppressed"] for b in bins) and any(not b["suppressed"] for b in bins)
    assert all(b["count"] is None for b in bins if b["suppressed"])


def test_compute_is_deterministic():
    y, p = _data(2000, 13, ties=True)
    groups = {"band": np.where(p > 0.3, "high", "low")}
    first = metrics.compute(y, p, [0.1, 0.5], groups, 10)
    second = metrics.compute(y.copy(), p.copy(), [0.1, 0.5], groups, 10)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
