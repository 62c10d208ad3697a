"""Paired comparison of AUROCs on the same cases by DeLong's method.

DeLong, DeLong & Clarke-Pearson (1988) estimate the covariance of several AUROCs measured on the
same cases from their structural components; Sun & Xu (2014) compute those components from
midranks in O(n log n) per model instead of comparing every positive with every negative. This
module implements that fast algorithm for any number of models and the two-sided paired test
between two of them. Pure numpy; deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sandbox.metrics import Z95, NotEstimable, _check_two_classes, _midrank


@dataclass(frozen=True)
class Comparison:
    """The paired DeLong test of AUROC ``a`` against AUROC ``b`` on the same cases."""

    auc_a: float
    auc_b: float
    difference: float  # a - b
    se: float
    lower: float  # 95% interval of the difference
    upper: float
    z: float | None  # None when the difference has no variance (identical rankings)
    p_value: float

    @property
    def distinguishable(self) -> bool:
        """True when the difference is statistically distinguishable at the 5% level."""
        return self.p_value < 0.05


def structural_components(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                         np.ndarray]:
    """AUROCs ``[k]`` and DeLong's structural components ``V10 [k, m]`` (over positives) and
    ``V01 [k, n]`` (over negatives) of ``k`` models scored on the same cases.

    ``scores`` is ``[k, N]`` (or ``[N]`` for one model). Raises NotEstimable with one class."""
    y = np.asarray(y, dtype=float)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    if scores.shape[1] != y.shape[0]:
        raise ValueError("scores and labels differ in length")
    m, n = _check_two_classes(y)
    positives, negatives = scores[:, y == 1], scores[:, y == 0]
    k = scores.shape[0]
    tx = np.empty((k, m))
    ty = np.empty((k, n))
    tz = np.empty((k, m + n))
    for r in range(k):
        tx[r] = _midrank(positives[r])
        ty[r] = _midrank(negatives[r])
        tz[r] = _midrank(np.concatenate((positives[r], negatives[r])))
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return aucs, v10, v01


def covariance(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs ``[k]`` and their DeLong covariance matrix ``[k, k]``."""
    aucs, v10, v01 = structural_components(y, scores)
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(aucs), len(aucs)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(aucs), len(aucs)))
    return aucs, s10 / m + s01 / n


def paired_test(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> Comparison:
    """Two-sided DeLong test that models ``a`` and ``b`` have the same AUROC on cases ``y``.

    Raises NotEstimable when ``y`` has one class."""
    aucs, cov = covariance(y, np.vstack((a, b)))
    return _comparison(float(aucs[0]), float(aucs[1]),
                       float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]))


__all__ = ["Comparison", "NotEstimable", "covariance", "paired_from_components", "paired_test",
           "structural_components"]


def paired_from_components(a: tuple[np.ndarray, np.ndarray],
                           b: tuple[np.ndarray, np.ndarray]) -> Comparison:
    """The paired test from two models' stored structural components ``(V10, V01)`` on the
    same cases in the same order (what a finished run keeps): no labels or predictions needed.

    Raises ValueError when the components come from different case sets."""
    (a10, a01), (b10, b01) = a, b
    if a10.shape != b10.shape or a01.shape != b01.shape:
        raise ValueError("the two runs were not scored on the same cases")
    m, n = len(a10), len(a01)
    auc_a, auc_b = float(a10.mean()), float(b10.mean())
    d10, d01 = a10 - b10, a01 - b01
    variance = (float(d10.var(ddof=1)) / m if m > 1 else 0.0) + (
        float(d01.var(ddof=1)) / n if n > 1 else 0.0)
    return _comparison(auc_a, auc_b, variance)


def _comparison(auc_a: float, auc_b: float, variance: float) -> Comparison:
    difference = auc_a - auc_b
    se = math.sqrt(max(variance, 0.0))
    if se < 1e-15:
        z, p = None, 1.0 if abs(difference) < 1e-15 else 0.0
    else:
        z = difference / se
        p = math.erfc(abs(z) / math.sqrt(2.0))
    return Comparison(auc_a=auc_a, auc_b=auc_b, difference=difference, se=se,
                      lower=difference - Z95 * se, upper=difference + Z95 * se, z=z, p_value=p)
