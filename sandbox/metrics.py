"""Validation metrics, computed in the trusted parent from labels the model never saw.

Everything is plain numpy and deterministic: the same predictions and labels give bit-identical
figures. AUROC and its 95% interval use DeLong's method (the fast midrank algorithm of Sun & Xu,
2014); AUPRC is average precision exactly as scikit-learn defines it; calibration intercept and
slope come from logistic recalibration fitted by Newton's method; proportions carry Wilson
intervals. Figures that cannot be estimated (one outcome class, a subgroup below the minimum size)
are ``None`` with a reason, never NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Z95 = 1.959963984540054
EPS = 1e-12
QUANTILE_EDGES = 20  # label-independent candidate cell edges: score quantiles
RELIABILITY_BINS = 10


class NotEstimable(Exception):
    """A figure cannot be computed on these data; ``reason`` says why, for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _midrank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    n = len(x)
    # start/end of each run of ties, vectorised
    boundaries = np.flatnonzero(np.diff(sorted_x)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [n]))
    ranks_sorted = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    ranks = np.empty(n, dtype=float)
    ranks[order] = ranks_sorted
    return ranks


def _check_two_classes(y: np.ndarray) -> tuple[int, int]:
    positives = int(y.sum())
    negatives = int(len(y) - positives)
    if positives == 0 or negatives == 0:
        kind = "positive" if positives else "negative"
        raise NotEstimable(f"every case is {kind}: this figure needs both outcome classes")
    return positives, negatives


def auroc_delong(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUROC with its DeLong standard error and 95% interval (clipped to [0, 1]).

    Raises NotEstimable when ``y`` has one class."""
    m, n = _check_two_classes(y)
    pos, neg = p[y == 1], p[y == 0]
    tx, ty = _midrank(pos), _midrank(neg)
    tz = _midrank(np.concatenate((pos, neg)))
    auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    v01 = (tz[:m] - tx) / n
    v10 = 1.0 - (tz[m:] - ty) / m
    s01 = v01.var(ddof=1) if m > 1 else 0.0
    s10 = v10.var(ddof=1) if n > 1 else 0.0
    se = math.sqrt(max(s01 / m + s10 / n, 0.0))
    return {"value": float(auc), "se": se, "lower": max(0.0, float(auc) - Z95 * se),
            "upper": min(1.0, float(auc) + Z95 * se)}


def _distinct_thresholds(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    order = np.argsort(-p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    last = np.concatenate((np.flatnonzero(np.diff(p_sorted)), [len(p) - 1]))
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    return tps.astype(float), fps.astype(float), p_sorted[last]


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision (scikit-learn's
    definition: sum over thresholds of the recall step times precision)."""
    _check_two_classes(y)
    tps, fps, _ = _distinct_thresholds(y, p)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    steps = np.diff(np.concatenate(([0.0], recall)))
    return float(np.sum(steps * precision))


def roc_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tps, fps, _ = _distinct_thresholds(y, p)
    return (np.concatenate(([0.0], fps / fps[-1])), np.concatenate(([0.0], tps / tps[-1])))


def pr_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tps, fps, _ = _distinct_thresholds(y, p)
    return (np.concatenate(([0.0], tps / tps[-1])),
            np.concatenate(([1.0], tps / (tps + fps))))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def wilson(successes: int, total: int) -> dict[str, float | int | None]:
    """A proportion with its Wilson 95% interval; ``value`` is None when ``total`` is 0."""
    if total == 0:
        return {"value": None, "lower": None, "upper": None, "numerator": 0, "denominator": 0}
    phat = successes / total
    denom = 1 + Z95**2 / total
    centre = (phat + Z95**2 / (2 * total)) / denom
    half = Z95 * math.sqrt(phat * (1 - phat) / total + Z95**2 / (4 * total**2)) / denom
    return {"value": phat, "lower": max(0.0, centre - half), "upper": min(1.0, centre + half),
            "numerator": int(successes), "denominator": int(total)}


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-10, 1 - 1e-10)
    return np.log(q / (1 - q))


def _expit(eta: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * eta))  # the logistic function, without overflow


def _loglik(y: np.ndarray, eta: np.ndarray) -> float:
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def _logistic_fit(y: np.ndarray, design: np.ndarray, offset: np.ndarray,
                  max_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood logistic regression by Newton's method with step halving.

    Returns (coefficients, standard errors). Raises NotEstimable when it does not converge
    (e.g. the predictions separate the outcome perfectly)."""
    beta = np.zeros(design.shape[1])
    current = _loglik(y, offset)
    for _ in range(max_iter):
        eta = offset + design @ beta
        mu = _expit(eta)
        gradient = design.T @ (y - mu)
        hessian = (design * (mu * (1 - mu))[:, None]).T @ design
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            raise NotEstimable("calibration could not be estimated on these data") from None
        scale = 1.0
        while scale > 1e-6:
            candidate = beta + scale * step
            value = _loglik(y, offset + design @ candidate)
            if value >= current - 1e-12:
                break
            scale /= 2
        beta, previous, current = candidate, current, value
        if abs(current - previous) < 1e-10 and np.max(np.abs(scale * step)) < 1e-8:
            break
    else:
        raise NotEstimable("calibration did not converge (the predictions may separate the "
                           "outcome perfectly)")
    if np.max(np.abs(beta)) > 1e3:
        raise NotEstimable("calibration is not estimable: the predictions separate the outcome")
    eta = offset + design @ beta
    mu = _expit(eta)
    hessian = (design * (mu * (1 - mu))[:, None]).T @ design
    se = np.sqrt(np.diag(np.linalg.inv(hessian)))
    return beta, se


def calibration(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Calibration-in-the-large (intercept with the model's log-odds as offset; 0 is ideal) and
    calibration slope (1 is ideal), each with a 95% Wald interval."""
    _check_two_classes(y)
    lp = _logit(p)
    ones = np.ones((len(y), 1))
    (intercept,), (se_i,) = _logistic_fit(y, ones, lp)
    (_, slope), (_, se_s) = _logistic_fit(y, np.column_stack((ones[:, 0], lp)), np.zeros(len(y)))
    return {
        "intercept": {"value": float(intercept), "lower": float(intercept - Z95 * se_i),
                      "upper": float(intercept + Z95 * se_i)},
        "slope": {"value": float(slope), "lower": float(slope - Z95 * se_s),
                  "upper": float(slope + Z95 * se_s)},
    }


def reliability(y: np.ndarray, p: np.ndarray, bins: int, min_size: int) -> list[dict[str, Any]]:
    """Equal-width bins of predicted risk: mean prediction and observed rate (Wilson interval);
    bins with fewer than ``min_size`` cases are suppressed."""
    index = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        entry: dict[str, Any] = {"bin_lower": b / bins, "bin_upper": (b + 1) / bins}
        if count == 0:
            continue
        if count < min_size:
            entry.update(suppressed=True, count=None)
        else:
            observed = wilson(int(y[mask].sum()), count)
            entry.update(suppressed=False, count=count, mean_predicted=float(p[mask].mean()),
                         observed=observed["value"], lower=observed["lower"],
                         upper=observed["upper"])
        out.append(entry)
    return out


def at_threshold(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """Sensitivity, specificity, PPV, NPV (Wilson intervals) and net benefit at one threshold
    (a case is predicted positive when its probability is at least the threshold)."""
    predicted = p >= threshold
    actual = y == 1
    tp = int(np.sum(predicted & actual))
    fp = int(np.sum(predicted & ~actual))
    fn = int(np.sum(~predicted & actual))
    tn = int(np.sum(~predicted & ~actual))
    n = len(y)
    net_benefit = tp / n - fp / n * threshold / (1 - threshold)
    treat_all = float(actual.mean()) - (1 - float(actual.mean())) * threshold / (1 - threshold)
    return {"threshold": threshold, "sensitivity": wilson(tp, tp + fn),
            "specificity": wilson(tn, tn + fp), "ppv": wilson(tp, tp + fp),
            "npv": wilson(tn, tn + fn), "net_benefit": net_benefit,
            "net_benefit_treat_all": treat_all,
            "counts": {"tp": tp, "fp": fp, "tn": tn, "fn": fn}}


def _guard(fn, *args) -> dict[str, Any]:
    try:
        value = fn(*args)
    except NotEstimable as exc:
        return {"value": None, "not_estimable": exc.reason}
    return value if isinstance(value, dict) else {"value": value}


def summary(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """The headline figures on one set of cases (overall or a subgroup)."""
    positives = int(y.sum())
    return {
        "n": int(len(y)), "positives": positives,
        "prevalence": wilson(positives, int(len(y))),
        "auroc": _guard(auroc_delong, y, p),
        "auprc": _guard(average_precision, y, p),
        "brier": {"value": brier(y, p)} if len(y) else {"value": None},
        "calibration": _guard(calibration, y, p),
    }


def subgroup_figures(y: np.ndarray, p: np.ndarray, groups: dict[str, np.ndarray],
                     min_size: int) -> list[dict[str, Any]]:
    """One entry per subgroup level. Levels with fewer than ``min_size`` cases are suppressed:
    no figures and no exact count, as in the SQL disclosure rules."""
    out = []
    for attribute in sorted(groups):
        levels = np.asarray(groups[attribute]).astype(str)
        for level in sorted(set(np.unique(levels).tolist())):
            mask = levels == level
            count = int(mask.sum())
            entry: dict[str, Any] = {"attribute": attribute, "level": level}
            if count < min_size:
                entry.update(suppressed=True,
                             reason=f"fewer than {min_size} cases: figures suppressed")
            else:
                entry.update(suppressed=False, **summary(y[mask], p[mask]))
            out.append(entry)
    return out


def candidate_edges(p: np.ndarray, thresholds: list[float]) -> list[float]:
    """Cell edges before merging: the card's thresholds, the reliability bin edges and score
    quantiles (positions chosen from the scores alone, never from labels)."""
    edges = {float(t) for t in thresholds}
    edges.update(b / RELIABILITY_BINS for b in range(1, RELIABILITY_BINS))
    if len(p):
        quantiles = np.quantile(p, np.linspace(0, 1, QUANTILE_EDGES + 1)[1:-1])
        edges.update(float(q) for q in quantiles)
    return sorted(e for e in edges if 0.0 < e < 1.0)


def score_cells(y: np.ndarray, p: np.ndarray, edges: list[float]) -> list[dict[str, Any]]:
    """The exact cells of the score axis cut at ``edges`` (a case is in the cell whose lower
    edge is the largest edge at most its score): staff-only, the input from which
    ``sandbox.disclosure`` releases every count over scores."""
    bounds = [0.0, *edges, 1.0]
    index = np.searchsorted(np.asarray(edges, dtype=float), p, side="right")
    cells = []
    for i in range(len(edges) + 1):
        mask = index == i
        cells.append({"lower": bounds[i], "upper": bounds[i + 1], "n": int(mask.sum()),
                      "positives": int(y[mask].sum()), "sum_predicted": float(p[mask].sum())})
    return cells


def compute(y: np.ndarray, p: np.ndarray, thresholds: list[float],
            groups: dict[str, np.ndarray], min_size: int,
            bins: int = RELIABILITY_BINS) -> dict[str, Any]:
    """Every figure of a validation report. ``y`` holds 0/1 labels, ``p`` probabilities in
    [0, 1], both in the same (canonical) row order. Deterministic. Never returns NaN."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    overall = summary(y, p)
    messages = []
    if overall["positives"] in (0, overall["n"]):
        messages.append("The held-out set contains only one outcome class, so discrimination "
                        "and calibration cannot be estimated on it.")
    curves: dict[str, Any] = {}
    if not messages:
        fpr, tpr = roc_points(y, p)
        recall, precision = pr_points(y, p)
        curves = {"roc": _thin(fpr, tpr), "pr": _thin(recall, precision)}
    return {
        "overall": overall,
        "thresholds": [at_threshold(y, p, float(t)) for t in thresholds],
        "reliability": reliability(y, p, bins, min_size),
        "subgroups": subgroup_figures(y, p, groups, min_size),
        "curves": curves,
        "score_cells": score_cells(y, p, candidate_edges(p, thresholds)),
        "messages": messages,
    }


def _thin(x: np.ndarray, y: np.ndarray, points: int = 200) -> dict[str, list[float]]:
    """At most ``points`` points of a curve, for plotting (end points always kept)."""
    if len(x) > points:
        index = np.unique(np.linspace(0, len(x) - 1, points).round().astype(int))
        x, y = x[index], y[index]
    return {"x": [round(float(v), 6) for v in x], "y": [round(float(v), 6) for v in y]}
