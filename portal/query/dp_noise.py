"""Noise for DP aggregate queries, in trusted code, by OpenDP's samplers only.

The worker returns exact, contribution-bounded aggregates per group (:mod:`portal.query.dp`).
Here each measurement becomes a vector over the released groups and goes through OpenDP's
Gaussian mechanism on integers (the discrete Gaussian, exact sampling: no floating-point noise
of our own). Groups without a public key set are chosen by OpenDP's Gaussian threshold
mechanism (partition selection: a group is released only if its noisy person count clears a
threshold set for ``selection_delta``), so whether a group exists, and how many groups were
not shown, reveals nothing beyond the DP guarantee. Every mechanism's privacy map is checked
against the planned share of ρ before it runs.

Released values are post-processing of the noisy measurements: ``sum = noisy centred sum +
midpoint × noisy count``, ``avg = midpoint + noisy centred sum / noisy count`` (clamped to the
bounds), counts clamped at 0. Each value carries its 95% half-width from the noise alone
(``⌈1.96 σ⌉`` for counts, whose noise is an integer; ``1.96 σ`` for sums; for averages by the
delta method), not from clipping or contribution bounding.
"""

from __future__ import annotations

import functools
import json
import math
import threading
from dataclasses import dataclass
from typing import Any

from portal.query.dp import DpPlan, Measure, Output, l2

Z95 = 1.959963984540054
_init_lock = threading.Lock()
_ready = False


def opendp() -> Any:
    """``opendp.prelude`` with the contrib features enabled (imported on first use)."""
    global _ready
    import opendp.prelude as dp

    with _init_lock:
        if not _ready:
            dp.enable_features("contrib")
            _ready = True
    return dp


def count_half_width(sigma: float) -> int:
    """The 95% half-width of a count's discrete Gaussian noise: a whole number, rounded up
    (|noise| <= ceil(1.96 σ) holds with probability at least 95%; floor would not)."""
    return math.ceil(Z95 * sigma - 1e-9)


def gaussian_sigma(l2_sensitivity: float, rho: float) -> float:
    """The smallest standard deviation whose Gaussian mechanism is ``rho``-zCDP at this L2
    sensitivity (ρ = Δ²/2σ²), nudged up until OpenDP's own map agrees."""
    sigma = l2_sensitivity / math.sqrt(2 * rho)
    while _vector_gaussian(sigma).map(float(l2_sensitivity)) > rho:
        sigma *= 1.000001
    return sigma


@functools.lru_cache(maxsize=256)
def _vector_gaussian(sigma: float) -> Any:
    dp = opendp()
    return dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T="i64")),
                              dp.l2_distance(T="f64"), scale=sigma)


@functools.lru_cache(maxsize=256)
def _threshold(sigma: float, threshold: int) -> Any:
    dp = opendp()
    return dp.m.make_gaussian_threshold(
        dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T="i64")),
        dp.l02inf_distance(dp.absolute_distance(T="i64")), scale=sigma, threshold=threshold)


def _selection_distance(l0: int) -> tuple[int, int, int]:
    """(L0, L2, L∞) of distinct-person counts when a person is in at most ``l0`` groups."""
    return (l0, math.ceil(math.sqrt(l0)), 1)


@functools.lru_cache(maxsize=256)
def selection_threshold(sigma: float, l0: int, rho: float, delta: float) -> int:
    """The smallest threshold at which partition selection with noise ``sigma`` is
    (``rho``, ``delta``)-approximate-zCDP. Raises ValueError when none up to 10^9 is."""
    distance = _selection_distance(l0)

    def ok(t: int) -> bool:
        spent_rho, spent_delta = _threshold(sigma, t).map(distance)
        return spent_rho <= rho and spent_delta <= delta

    high = 2
    while not ok(high):
        high *= 2
        if high > 10**9:
            raise ValueError("no threshold meets the selection delta")
    low = high // 2
    while low + 1 < high:
        middle = (low + high) // 2
        low, high = (low, middle) if ok(middle) else (middle, high)
    return high


@dataclass
class DpAnswer:
    columns: list[str]
    rows: list[list[Any]]
    half_widths: list[list[float | None]]
    truncated: bool
    groups_released: int


def release(plan: DpPlan, exact_rows: list[tuple[Any, ...]], max_rows: int) -> DpAnswer:
    """Noisy answer to a planned query from the worker's exact bounded rows (keys first, then
    one column per measurement, in plan order)."""
    keys_n = plan.key_count
    exact: dict[tuple[Any, ...], tuple[int, ...]] = {}
    for row in exact_rows:
        exact[tuple(row[:keys_n])] = tuple(int(v or 0) for v in row[keys_n:])
    index = {m.alias: i for i, m in enumerate(plan.measures)}
    if plan.public_keys is not None:
        groups = [k for k in plan.public_keys]
        noisy: dict[str, list[int]] = {}
    else:
        groups, persons = _select(plan, exact, index[Measure("persons").alias])
        noisy = {Measure("persons").alias: persons}
    zero = (0,) * len(plan.measures)
    for measure in plan.measures:
        if measure.alias in noisy:
            continue
        values = [exact.get(g, zero)[index[measure.alias]] for g in groups]
        sampler = _vector_gaussian(plan.sigmas[measure.alias])
        assert sampler.map(float(l2(plan, measure))) <= plan.rho / len(plan.measures) + 1e-12
        noisy[measure.alias] = list(sampler(values)) if values else []
    order = sorted(range(len(groups)), key=lambda i: _sort_key(groups[i]))
    rows, widths = [], []
    for i in order:
        row, width = _row(plan, groups[i], {a: v[i] for a, v in noisy.items()})
        rows.append(row)
        widths.append(width)
    rows, widths = _order(plan, rows, widths)
    truncated = len(rows) > max_rows
    return DpAnswer([o.name for o in plan.outputs], rows[:max_rows], widths[:max_rows],
                    truncated, len(groups))


def _select(plan: DpPlan, exact: dict[tuple[Any, ...], tuple[int, ...]],
            column: int) -> tuple[list[tuple[Any, ...]], list[int]]:
    """Partition selection: the groups whose noisy person count clears the threshold, with
    those noisy counts."""
    assert plan.selection is not None
    sigma, threshold = plan.selection
    mechanism = _threshold(sigma, threshold)
    spent = mechanism.map(_selection_distance(plan.l0))
    assert spent[0] <= plan.rho / len(plan.measures) + 1e-12 and spent[1] <= plan.delta
    by_name = {json.dumps(list(k), default=str): k for k in exact}
    released = mechanism({name: exact[k][column] for name, k in by_name.items()})
    groups = [by_name[name] for name in released]
    return groups, [int(released[name]) for name in released]


def _order(plan: DpPlan, rows: list[list[Any]], widths: list[list[float | None]]
           ) -> tuple[list[list[Any]], list[list[float | None]]]:
    """The user's ORDER BY and LIMIT, on released values only (post-processing)."""
    pairs = list(zip(rows, widths, strict=True))
    for column, descending in reversed(plan.order):
        pairs.sort(key=lambda p: _sort_key((p[0][column],)), reverse=descending)
    if plan.limit is not None:
        count, offset = plan.limit
        pairs = pairs[offset:offset + count]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _sort_key(group: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, isinstance(v, str), v if not isinstance(v, str | type(None))
                  else 0, str(v)) for v in group)


def _row(plan: DpPlan, group: tuple[Any, ...],
         noisy: dict[str, int]) -> tuple[list[Any], list[float | None]]:
    row: list[Any] = []
    width: list[float | None] = []
    for out in plan.outputs:
        value, half = _estimate(plan, out, group, noisy)
        row.append(value)
        width.append(half)
    return row, width


def _estimate(plan: DpPlan, out: Output, group: tuple[Any, ...],
              noisy: dict[str, int]) -> tuple[Any, float | None]:
    if out.kind == "key":
        return group[out.index], None
    if out.kind in ("rows", "persons"):
        alias = Measure(out.kind).alias
        return max(0, noisy[alias]), count_half_width(plan.sigmas[alias])
    count_alias = Measure("count", out.index).alias
    count, count_sigma = noisy[count_alias], plan.sigmas[count_alias]
    if out.kind == "count":
        return max(0, count), count_half_width(count_sigma)
    column = plan.values[out.index]
    sum_alias = Measure("sum", out.index).alias
    centred = noisy[sum_alias] * column.step
    sum_sigma = plan.sigmas[sum_alias] * column.step
    if out.kind == "sum":
        value = centred + column.mid * max(0, count)
        return value, Z95 * math.sqrt(sum_sigma ** 2 + (column.mid * count_sigma) ** 2)
    n = max(1, count)
    low, high = column.bounds
    value = min(high, max(low, column.mid + centred / n))
    spread = math.sqrt((sum_sigma / n) ** 2 + (centred * count_sigma / n ** 2) ** 2)
    half = min(Z95 * spread, (high - low) / 2)
    if out.digits is not None:
        value = round(value, out.digits)
    return value, half


def expected_half_widths(plan: DpPlan, persons: int | None = None) -> list[dict[str, Any]]:
    """Before running: the 95% half-width of each aggregate column (for averages, at a group
    of ``persons`` values when given, else per 100 values)."""
    result = []
    n = persons or 100
    for out in plan.outputs:
        if out.kind == "key":
            continue
        if out.kind in ("rows", "persons", "count"):
            alias = (Measure(out.kind).alias if out.kind != "count"
                     else Measure("count", out.index).alias)
            result.append({"column": out.name, "kind": out.kind,
                           "half_width": count_half_width(plan.sigmas[alias])})
            continue
        column = plan.values[out.index]
        sum_sigma = plan.sigmas[Measure("sum", out.index).alias] * column.step
        count_sigma = plan.sigmas[Measure("count", out.index).alias]
        if out.kind == "sum":
            half = Z95 * math.sqrt(sum_sigma ** 2 + (column.mid * count_sigma) ** 2)
            result.append({"column": out.name, "kind": "sum", "half_width": half})
        else:
            result.append({"column": out.name, "kind": "avg", "at_values": n,
                           "half_width": Z95 * sum_sigma / n})
    return result
