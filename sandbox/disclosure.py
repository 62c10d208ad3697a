"""What a team may see of a validation: the release mechanism for report figures.

Staff see the exact figures (``sandbox.metrics.compute``); a team sees what this module
releases from them, each figure through a mechanism with a stated bound
(docs/decisions/0010-validation-report-release.md):

- **Grid rounding.** Every released real number (AUROC, AUPRC, Brier, calibration, prevalence,
  intervals) is rounded to a grid whose step scales with the number of cases it was computed
  on: the largest of :data:`NICE_STEPS` not above ``1/sqrt(n)`` (0.05 on wdbc's held-out set).
  A figure on a grid of step ``s`` takes at most ``1/s + 1`` values, so it carries at most
  ``log2(1/s + 1)`` bits, whatever the model. Standard errors and full-precision Brier or
  log-loss are never released.
- **Score cells.** Every count a report gives over model scores (threshold tables, the
  reliability curve, the ROC and precision-recall points) is computed from one partition of
  the score axis into cells; a non-empty cell needs at least ``min_cell`` positives *and*
  ``min_cell`` negatives, otherwise edges are removed (cells merged) until it has. Cells
  obtained by differencing two released thresholds or bins are cells of the same partition, so
  differencing inside one report reveals no group smaller than ``min_cell`` per class.
- **Subgroups.** A level is released only with at least ``min_cell`` positives and negatives;
  when one level of an attribute is suppressed, further levels are suppressed until the
  suppressed ones together also meet the minimum (complementary suppression: they cannot be
  recovered as the total minus the others).
- **Singling-out check** (:func:`singling_out`): flags scores that single out rows, for staff.
- **The Ladder** (:func:`ladder_step`, Blum & Hardt 2015): the team-visible primary metric of a
  non-final submission changes only when it beats the team's best by the margin.

Everything here is pure: the same inputs give the same output. Nothing reads the store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sandbox.metrics import wilson

NICE_STEPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
ROUNDED_KEYS = ("value", "lower", "upper")
LOWER_IS_BETTER = frozenset({"brier"})
CALIBRATION_SPAN = 10.0  # released calibration intercepts and slopes are clipped to +-5


def grid_step(n: int) -> float:
    """The rounding step for a figure computed on ``n`` cases: the largest nice step not above
    ``1/sqrt(n)`` (0.2 at most, 0.001 at least)."""
    if n <= 0:
        return NICE_STEPS[-1]
    target = 1.0 / math.sqrt(n)
    fitting = [s for s in NICE_STEPS if s <= target + 1e-12]
    return fitting[-1] if fitting else NICE_STEPS[0]


def on_grid(value: float | None, step: float) -> float | None:
    """``value`` rounded to the nearest multiple of ``step`` (None stays None)."""
    if value is None:
        return None
    digits = max(0, -math.floor(math.log10(step)) + 1)
    return round(round(float(value) / step) * step, digits)


def bits(step: float, span: float = 1.0) -> float:
    """At most how many bits a figure on a grid of ``step`` over ``span`` can carry."""
    return math.log2(span / step + 1)


def _rounded(entry: dict[str, Any] | None, step: float,
             clip: float | None = None) -> dict[str, Any]:
    """An estimate (``value``/``lower``/``upper``, perhaps ``not_estimable``) on the grid
    (within ``[-clip, clip]`` when given); standard errors and anything else are dropped,
    integer counts are kept."""
    if not entry:
        return {"value": None}
    out: dict[str, Any] = {}
    for key, value in entry.items():
        if key in ROUNDED_KEYS:
            if clip is not None and value is not None:
                value = min(max(float(value), -clip), clip)
            out[key] = on_grid(value, step)
        elif key in ("not_estimable", "numerator", "denominator"):
            out[key] = value
    out.setdefault("value", None)
    return out


def release_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary (overall or one subgroup level) with every real number on its grid."""
    step = grid_step(int(summary["n"]))
    calibration = summary.get("calibration") or {}
    if "intercept" in calibration:
        clip = CALIBRATION_SPAN / 2
        released_calibration = {"intercept": _rounded(calibration["intercept"], step, clip),
                                "slope": _rounded(calibration["slope"], step, clip)}
    else:
        released_calibration = _rounded(calibration, step)
    return {"n": summary["n"], "positives": summary["positives"], "grid_step": step,
            "prevalence": _rounded(summary["prevalence"], step),
            "auroc": _rounded(summary["auroc"], step), "auprc": _rounded(summary["auprc"], step),
            "brier": _rounded(summary["brier"], step), "calibration": released_calibration}


# ---- score cells --------------------------------------------------------------------------

@dataclass
class Cell:
    lower: float  # cases with lower <= score < upper (the last cell includes 1)
    upper: float
    n: int
    positives: int
    sum_predicted: float

    @property
    def negatives(self) -> int:
        return self.n - self.positives

    def ok(self, minimum: int) -> bool:
        return self.n == 0 or (self.positives >= minimum and self.negatives >= minimum)


def merge_cells(cells: list[dict[str, Any]], minimum: int,
                keep: frozenset[float] = frozenset()) -> list[Cell]:
    """Merge adjacent cells until every non-empty cell has at least ``minimum`` positives and
    ``minimum`` negatives. The edge removed for a bad cell is one not in ``keep`` (the card's
    thresholds) when it can be, else the one towards the smaller neighbour. Deterministic."""
    merged = [Cell(c["lower"], c["upper"], c["n"], c["positives"], c["sum_predicted"])
              for c in cells]
    while len(merged) > 1:
        bad = [i for i, c in enumerate(merged) if not c.ok(minimum)]
        if not bad:
            break
        i = min(bad, key=lambda j: (merged[j].n, j))
        options = []  # (prefer keeping thresholds, neighbour size, index of the left cell)
        if i > 0:
            options.append((merged[i].lower in keep, merged[i - 1].n, i - 1))
        if i < len(merged) - 1:
            options.append((merged[i].upper in keep, merged[i + 1].n, i))
        _, _, left = min(options)
        a, b = merged[left], merged[left + 1]
        merged[left:left + 2] = [Cell(a.lower, b.upper, a.n + b.n, a.positives + b.positives,
                                      a.sum_predicted + b.sum_predicted)]
    return merged


def _counts_at(cells: list[Cell], threshold: float) -> dict[str, int]:
    above = [c for c in cells if c.lower >= threshold]
    below = [c for c in cells if c.upper <= threshold]
    tp = sum(c.positives for c in above)
    fp = sum(c.negatives for c in above)
    return {"tp": tp, "fp": fp, "fn": sum(c.positives for c in below),
            "tn": sum(c.negatives for c in below)}


def _released_threshold(exact: dict[str, Any], cells: list[Cell], n: int) -> dict[str, Any]:
    threshold = exact["threshold"]
    edges = {c.lower for c in cells[1:]}
    if threshold not in edges:
        return {"threshold": threshold, "suppressed": True,
                "reason": "fewer cases of one outcome than the minimum on one side of this "
                          "threshold (or between it and another): counts suppressed"}
    counts = _counts_at(cells, threshold)
    step = grid_step(n)
    out: dict[str, Any] = {"threshold": threshold, "suppressed": False, "counts": counts}
    for key in ("sensitivity", "specificity", "ppv", "npv"):
        out[key] = _rounded(exact[key], step)
    out["net_benefit"] = on_grid(exact["net_benefit"], step / 10)
    out["net_benefit_treat_all"] = on_grid(exact["net_benefit_treat_all"], step / 10)
    return out


def _curves(cells: list[Cell]) -> dict[str, Any]:
    positives = sum(c.positives for c in cells)
    negatives = sum(c.negatives for c in cells)
    if not positives or not negatives or len(cells) < 2:
        return {}
    tp = fp = 0
    roc_x, roc_y, pr_x, pr_y = [0.0], [0.0], [0.0], [1.0]
    for cell in reversed(cells):  # from the highest scores down
        tp += cell.positives
        fp += cell.negatives
        roc_x.append(round(fp / negatives, 4))
        roc_y.append(round(tp / positives, 4))
        if tp + fp:
            pr_x.append(round(tp / positives, 4))
            pr_y.append(round(tp / (tp + fp), 4))
    return {"roc": {"x": roc_x, "y": roc_y}, "pr": {"x": pr_x, "y": pr_y}}


def _reliability(cells: list[Cell], n: int) -> list[dict[str, Any]]:
    step = grid_step(n)
    out = []
    for cell in cells:
        if cell.n == 0:
            continue
        observed = wilson(cell.positives, cell.n)
        out.append({"bin_lower": on_grid(cell.lower, 0.001), "bin_upper":
                    on_grid(cell.upper, 0.001), "suppressed": False, "count": cell.n,
                    "mean_predicted": on_grid(cell.sum_predicted / cell.n, step),
                    "observed": on_grid(observed["value"], step),
                    "lower": on_grid(observed["lower"], step),
                    "upper": on_grid(observed["upper"], step)})
    return out


def _level_ok(level: dict[str, Any], minimum: int) -> bool:
    return (not level.get("suppressed") and level["positives"] >= minimum
            and level["n"] - level["positives"] >= minimum)


def release_subgroups(levels: list[dict[str, Any]], minimum: int) -> list[dict[str, Any]]:
    """Subgroup levels as a team sees them: a level needs ``minimum`` positives and negatives;
    within an attribute the suppressed levels together must also meet it, else the smallest
    released levels are suppressed too (so none is the total minus the others)."""
    reason = f"fewer than {minimum} positive or negative cases: figures suppressed"
    out: list[dict[str, Any]] = []
    for attribute in sorted({level["attribute"] for level in levels}):
        group = [lv for lv in levels if lv["attribute"] == attribute]
        ok = {lv["level"]: _level_ok(lv, minimum) for lv in group}

        def pooled(names: list[str], group=group) -> tuple[int, int]:
            chosen = [lv for lv in group if lv["level"] in names and "n" in lv]
            pos = sum(lv["positives"] for lv in chosen)
            return pos, sum(lv["n"] for lv in chosen) - pos

        suppressed = [name for name, good in ok.items() if not good]
        if suppressed:
            released = sorted((lv for lv in group if ok[lv["level"]]),
                              key=lambda lv: (lv["n"], lv["level"]))
            while released and (len(suppressed) == 1 or min(pooled(suppressed)) < minimum):
                suppressed.append(released.pop(0)["level"])
        for lv in group:
            if lv["level"] in suppressed:
                out.append({"attribute": attribute, "level": lv["level"], "suppressed": True,
                            "reason": reason})
            else:
                out.append({"attribute": attribute, "level": lv["level"], "suppressed": False,
                            **release_summary(lv)})
    return out


def release_figures(figures: dict[str, Any], minimum: int) -> dict[str, Any]:
    """The team-visible version of ``sandbox.metrics.compute`` output (see the module
    docstring). ``figures`` must carry ``score_cells``."""
    overall = figures["overall"]
    n = int(overall["n"])
    thresholds = [t["threshold"] for t in figures["thresholds"]]
    cells = merge_cells(figures["score_cells"], minimum, frozenset(thresholds))
    filled = [c for c in cells if c.n]  # one filled cell is the whole set: nothing to show
    return {
        "overall": release_summary(overall),
        "thresholds": [_released_threshold(t, cells, n) for t in figures["thresholds"]],
        "reliability": _reliability(filled, n) if len(filled) > 1 else [],
        "subgroups": release_subgroups(figures["subgroups"], minimum),
        "curves": _curves(filled) if not figures["messages"] and len(filled) > 1 else {},
        "messages": list(figures["messages"]),
    }


def max_bits(released: dict[str, Any]) -> float:
    """An upper bound on the information (in bits) one released full report carries about the
    labels, beyond the counts that are the same for every model (held-out and subgroup sizes
    and prevalences): each model-dependent figure on a grid of step ``s`` over a span ``w``
    at most ``log2(w/s + 1)`` bits (calibration is clipped to ``[-CALIBRATION_SPAN/2,
    CALIBRATION_SPAN/2]``), each free cell count at most ``log2(n + 1)`` (two per threshold:
    true and false positives; one per reliability cell), intervals derived from released counts
    nothing more."""
    n = released["overall"]["n"]
    count_bits = math.log2(n + 1)
    total = 0.0
    summaries = [released["overall"], *[s for s in released["subgroups"]
                                        if not s.get("suppressed")]]
    for summary in summaries:
        step = summary["grid_step"]
        for key, span in (("auroc", 1.0), ("auprc", 1.0), ("brier", 1.0)):
            total += sum(bits(step, span) for k in ROUNDED_KEYS
                         if summary[key].get(k) is not None)
        for entry in (summary["calibration"].get("intercept") or {},
                      summary["calibration"].get("slope") or {}):
            total += sum(bits(step, CALIBRATION_SPAN) for k in ROUNDED_KEYS
                         if entry.get(k) is not None)
    total += count_bits * len(released["reliability"])
    total += 2 * count_bits * sum(1 for t in released["thresholds"] if not t["suppressed"])
    return round(total, 1)


# ---- the Ladder ---------------------------------------------------------------------------

def ladder_step(best: float | None, value: float | None, metric: str, margin: float,
                step: float) -> tuple[float | None, bool]:
    """One submission through the Ladder: returns (the team-visible best, whether it changed).

    The best changes only when ``value`` beats it by more than ``margin`` (at least one grid
    step); it is then ``value`` on the grid. So the visible best moves at most
    ``span / margin + 1`` times over any number of submissions."""
    if value is None:
        return best, False
    margin = max(margin, step)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    if best is None or sign * (value - best) > margin:
        return on_grid(value, step), True
    return best, False


# ---- singling out -------------------------------------------------------------------------

def singling_out(p: np.ndarray, thresholds: list[float], minimum: int) -> dict[str, Any]:
    """Does a model's score vector single out held-out rows? Shown to staff on every run.

    Flags (each with a reason):
    - ``threshold_tail``: fewer than ``minimum`` (but some) rows at or above, or below, a
      reported threshold — a count there speaks about a handful of rows;
    - ``tagged_rows``: at least half of the rows share one exact score while some other score
      is held by fewer than ``minimum`` rows — a background with tagged rows;
    - ``precision_code``: two or more pairs of neighbouring distinct scores closer (on the
      log-odds scale) than a smooth score distribution would put any pair, given how many
      distinct scores there are — values that encode rows in low-order digits.
    Deterministic; does not look at labels."""
    p = np.asarray(p, dtype=float)
    n = len(p)
    reasons: list[str] = []
    tails = []
    for t in thresholds:
        above = int(np.sum(p >= t))
        for side, count in (("at or above", above), ("below", n - above)):
            if 0 < count < minimum:
                tails.append(t)
                reasons.append(f"{count} row(s) {side} the threshold {t:g} (minimum {minimum})")
    values, counts = np.unique(p, return_counts=True)
    distinct = len(values)
    mode_share = float(counts.max() / n) if n else 0.0
    rare = int(np.sum(counts < minimum))
    tagged = mode_share >= 0.5 and distinct > 1 and rare > 0
    if tagged:
        reasons.append(f"{mode_share:.0%} of rows share one score while {rare} other score(s) "
                       f"are held by fewer than {minimum} rows each")
    logits = np.log(np.clip(values, 1e-12, 1 - 1e-12) / np.clip(1 - values, 1e-12, 1))
    tiny = 0
    if distinct > 2:
        gaps = np.diff(logits)
        span = float(logits[-1] - logits[0]) or 1.0
        tolerance = span / (100.0 * distinct * distinct)
        tiny = int(np.sum((gaps > 0) & (gaps < tolerance)))
    if tiny >= 2:
        reasons.append(f"{tiny} pairs of distinct scores differ by less than a smooth score "
                       f"distribution allows (a code in the low-order digits)")
    return {"flagged": bool(reasons), "reasons": reasons,
            "signals": {"rows": n, "distinct_scores": distinct,
                        "distinct_ratio": round(distinct / n, 3) if n else 0.0,
                        "mode_share": round(mode_share, 3), "rare_scores": rare,
                        "tiny_gaps": tiny, "threshold_tails": sorted(set(tails))}}


def fixed_edges(thresholds: list[float]) -> list[float]:
    """Score edges every report of a task cuts at, whatever the model: the card's thresholds
    and the reliability bin edges."""
    return sorted({float(t) for t in thresholds} | {b / 10 for b in range(1, 10)})


def score_sides(p: np.ndarray, edges: list[float]) -> dict[str, str]:
    """For each edge, which rows score at or above it: a bitmap (hex) in the canonical row
    order. Staff-only (kept in the exact report) for :func:`differencing`."""
    p = np.asarray(p, dtype=float)
    return {f"{e:g}": np.packbits(p >= e).tobytes().hex() for e in edges}


def differencing(sides: dict[str, str], others: dict[int, dict[str, str]],
                 minimum: int) -> list[str]:
    """Reasons to flag a final submission whose scores put fewer than ``minimum`` (but some)
    rows on the other side of a fixed edge than an earlier final submission of the team did:
    the two released reports' counts would differ by those rows' labels."""
    reasons = []
    for run_id in sorted(others):
        for edge, bitmap in sides.items():
            previous = (others[run_id] or {}).get(edge)
            if previous is None or len(previous) != len(bitmap):
                continue
            a = np.unpackbits(np.frombuffer(bytes.fromhex(bitmap), dtype=np.uint8))
            b = np.unpackbits(np.frombuffer(bytes.fromhex(previous), dtype=np.uint8))
            changed = int(np.sum(a != b))
            if 0 < changed < minimum:
                reasons.append(f"{changed} row(s) moved across {edge} since final run {run_id} "
                               f"(minimum {minimum}): differencing the two reports would "
                               f"reveal their labels")
    return reasons

