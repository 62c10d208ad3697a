"""Paired DeLong: the fast (midrank) algorithm against the 1988 definition computed pair by
pair, against a small example worked by hand, and its agreement with the single-AUROC figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from sandbox import delong, metrics


def _delong_by_definition(y, scores):
    """DeLong et al. (1988) literally: psi over every (positive, negative) pair."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    aucs = psi.mean(axis=(1, 2))
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    s10 = np.array([[np.sum((v10[r] - aucs[r]) * (v10[s] - aucs[s])) / (m - 1)
                     for s in range(len(aucs))] for r in range(len(aucs))])
    s01 = np.array([[np.sum((v01[r] - aucs[r]) * (v01[s] - aucs[s])) / (n - 1)
                     for s in range(len(aucs))] for r in range(len(aucs))])
    return aucs, s10 / m + s01 / n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_delong_equals_the_pairwise_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(300) < 0.3).astype(float)
    a = np.round(rng.random(300) * 0.6 + 0.4 * y, 2)  # rounded: many ties
    b = np.round(rng.random(300) * 0.8 + 0.2 * y, 1)
    c = rng.random(300)
    scores = np.vstack((a, b, c))
    aucs, cov = delong.covariance(y, scores)
    want_aucs, want_cov = _delong_by_definition(y, scores)
    np.testing.assert_allclose(aucs, want_aucs, atol=1e-12)
    np.testing.assert_allclose(cov, want_cov, atol=1e-12)
    np.testing.assert_allclose(aucs, [roc_auc_score(y, s) for s in scores], atol=1e-12)


def test_paired_test_on_a_small_example_worked_by_hand():
    # positives (y=1): a = 0.9, 0.6, 0.4; negatives: a = 0.5, 0.3.  b ranks every case the other
    # way round within the positives' first two.
    y = np.array([1, 1, 1, 0, 0], dtype=float)
    a = np.array([0.9, 0.6, 0.4, 0.5, 0.3])
    b = np.array([0.6, 0.9, 0.2, 0.5, 0.3])
    # a: psi rows (per positive vs negatives 0.5, 0.3): [1,1], [1,1], [0,1] -> AUC 5/6
    # b: [1,1], [1,1], [0,0] -> AUC 4/6
    # V10 a = [1, 1, .5], b = [1, 1, 0]; V01 a = [2/3, 1], b = [2/3, 2/3]
    # S10: var(a)=1/12, var(b)=1/3, cov=1/6 ; S01: var(a)=1/18, var(b)=0, cov=0
    # var(a-b) = (1/12 + 1/3 - 2/6)/3 + (1/18)/2 = 1/36 + 1/36 = 1/18
    result = delong.paired_test(y, a, b)
    assert result.auc_a == pytest.approx(5 / 6) and result.auc_b == pytest.approx(4 / 6)
    assert result.se == pytest.approx(math.sqrt(1 / 18))
    z = (1 / 6) / math.sqrt(1 / 18)
    assert result.z == pytest.approx(z)
    assert result.p_value == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert not result.distinguishable


def test_single_model_variance_matches_the_report_interval():
    rng = np.random.default_rng(7)
    y = (rng.random(500) < 0.2).astype(float)
    p = np.clip(rng.random(500) * 0.5 + 0.3 * y, 0, 1)
    _, cov = delong.covariance(y, p)
    assert math.sqrt(cov[0, 0]) == pytest.approx(metrics.auroc_delong(y, p)["se"], rel=1e-12)


def test_a_clearly_better_model_is_distinguishable_and_identical_models_are_not():
    rng = np.random.default_rng(3)
    y = (rng.random(2000) < 0.3).astype(float)
    good = rng.random(2000) * 0.4 + 0.6 * y
    weak = rng.random(2000) * 0.9 + 0.1 * y
    assert delong.paired_test(y, good, weak).distinguishable
    same = delong.paired_test(y, good, good)
    assert same.p_value == 1.0 and same.z is None and not same.distinguishable


def test_one_class_is_not_estimable():
    with pytest.raises(metrics.NotEstimable):
        delong.paired_test(np.ones(5), np.arange(5.0), np.arange(5.0))


def test_paired_test_from_stored_components_equals_the_test_from_predictions():
    rng = np.random.default_rng(11)
    y = (rng.random(400) < 0.25).astype(float)
    a = rng.random(400) * 0.5 + 0.4 * y
    b = np.round(rng.random(400) * 0.7 + 0.2 * y, 2)
    _, a10, a01 = delong.structural_components(y, a)
    _, b10, b01 = delong.structural_components(y, b)
    stored = delong.paired_from_components((a10[0], a01[0]), (b10[0], b01[0]))
    direct = delong.paired_test(y, a, b)
    assert stored.difference == pytest.approx(direct.difference, abs=1e-12)
    assert stored.se == pytest.approx(direct.se, rel=1e-10)
    assert stored.p_value == pytest.approx(direct.p_value, rel=1e-9)
    with pytest.raises(ValueError):
        delong.paired_from_components((a10[0][:-1], a01[0]), (b10[0], b01[0]))
