"""Planning differentially private aggregate queries (tiers with ``disclosure: dp``).

A query in a DP tier has the aggregate shape of :mod:`portal.query.disclosure` (one SELECT,
joins on the person column, group keys and plain aggregates), restricted further:

- aggregates: ``count(*)``, ``count(col)``, ``count(DISTINCT <person column>)``, ``sum(col)``,
  ``avg(col)`` (also ``round(avg(col), n)``); ``sum``/``avg`` only over columns whose clipping
  bounds the data card declares (``dp_bounds``);
- every GROUP BY key is selected; no HAVING, ORDER BY or LIMIT (they would act on exact values:
  released rows come sorted by their keys);
- every personal table is joined to the others on the person column (so each joined row belongs
  to one person).

The rewrite runs in the SQL worker and computes, per group, *exact but bounded* aggregates:
each person keeps at most ``max_rows_per_group`` rows per group (``row_number() OVER
(PARTITION BY person, keys)``) and at most ``max_groups_per_person`` groups (``dense_rank()`` by
a hash of the keys), values are clipped to their bounds and quantised to integers (so sums are
exact integer arithmetic, with an exact sensitivity). Noise is added afterwards in the portal
process by OpenDP (:mod:`portal.query.dp_noise`). Groups are the public key set when every key
column declares one (``dp_keys``), else they are chosen by DP partition selection.

The per-query cost ``rho_per_query`` is split equally among the measurements a query needs.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

from portal.errors import Rejected
from portal.policy.engine import ResolvedTier
from portal.policy.model import DpSettings
from portal.query import disclosure, totality
from portal.query.columns import ColumnResolver, from_aliases
from portal.query.preflight import Preflight, walk

QUANTUM_BITS = 16  # clipped values are quantised to 2^16 steps over their bounds' half-range
MAX_GROUPS_FETCHED = 100_000  # exact groups read back from the worker (before selection)
_P = "__dp_"
DP_HELP = ("Differentially private access allows count(*), count(col), count(DISTINCT "
           "person_id), sum(col) and avg(col) (round(avg(col), n) too) over plain columns, "
           "grouped by selected keys; no HAVING, ORDER BY or LIMIT (rows come sorted by their "
           "keys). sum and avg need clipping bounds in the data card.")


@dataclass(frozen=True)
class Measure:
    """One noisy quantity per group: ``rows`` (bounded row count), ``persons`` (distinct
    persons), ``count`` (non-null values of value column ``value``), ``sum`` (the quantised,
    centred, clipped sum of value column ``value``)."""

    kind: str
    value: int | None = None

    @property
    def alias(self) -> str:
        return f"{_P}{self.kind}" + ("" if self.value is None else f"_{self.value}")


@dataclass(frozen=True)
class Output:
    """One column the user asked for: a group key or an aggregate estimate."""

    name: str
    kind: str  # key | rows | persons | count | sum | avg
    index: int  # key index, or value index (-1 for rows and persons)
    digits: int | None = None  # round(avg(x), n)


@dataclass(frozen=True)
class ValueColumn:
    bounds: tuple[float, float] | None

    @property
    def mid(self) -> float:
        assert self.bounds is not None
        return (self.bounds[0] + self.bounds[1]) / 2

    @property
    def step(self) -> float:
        """Size of one quantisation step (value units)."""
        assert self.bounds is not None
        return (self.bounds[1] - self.bounds[0]) / 2 / 2 ** QUANTUM_BITS


@dataclass
class DpPlan:
    """How to run, noise and charge one DP query. ``sigmas`` are in measurement units (rows,
    persons or quantisation steps); ``selection`` is (σ, threshold) of partition selection,
    None when the groups are public."""

    sql: str
    outputs: list[Output]
    key_count: int
    values: list[ValueColumn]
    measures: list[Measure]
    settings: DpSettings
    rho: float
    delta: float
    l0: int
    public_keys: list[tuple[Any, ...]] | None
    sigmas: dict[str, float] = field(default_factory=dict)
    selection: tuple[float, int] | None = None
    personal: bool = True
    order: list[tuple[int, bool]] = field(default_factory=list)  # (output, descending)
    limit: tuple[int, int] | None = None  # (limit, offset), applied to the noisy rows

    def canonical(self, resolved: ResolvedTier) -> str:
        """The ledger key: the same verified rewrite, on the same extract, with the same DP
        parameters. Identical queries (up to whitespace and letter case, which the parser
        normalises) get one key."""
        payload = json.dumps([resolved.extract_key(), resolved.tier, self.sql,
                              self.settings.model_dump(), self.rho], sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _refuse(detail: str) -> Rejected:
    return Rejected("aggregate_shape_not_allowed", f"{detail} {DP_HELP}")


def plan_dp(pre: Preflight, resolved: ResolvedTier, release: Any) -> DpPlan | None:
    """Check a query for a DP tier and build its bounded rewrite and noise parameters.

    Returns None for a bare DESCRIBE or SHOW TABLES. Raises Rejected
    (``aggregate_shape_not_allowed``, ``aggregate_function_not_allowed``)."""
    node = disclosure.check_aggregate(pre, resolved)
    if node is None:
        return None
    settings = resolved.settings.dp
    assert settings is not None
    if node.get("having") is not None:
        raise _refuse("HAVING is not available (it would filter on exact values).")
    persons = disclosure._person_aliases(node["from_table"], resolved)
    aliases = from_aliases(node["from_table"])
    resolver = ColumnResolver(resolved, release, aliases)
    _check_person_joins(node["from_table"], persons)
    names = disclosure.aggregate_names()
    keys, outputs, values, value_refs = [], [], [], []
    person_columns = {p for _, p in persons}
    for item in node["select_list"]:
        name = item.get("alias") or _deparse(item)
        if not disclosure._contains_aggregate(item, names):
            outputs.append(Output(name, "key", len(keys)))
            keys.append(item)
            continue
        kind, digits, arg = _aggregate(item, person_columns)
        index = -1
        if arg is not None:
            info = resolver.info(arg)
            bounds = info.dp_bounds if info else None
            if kind in ("sum", "avg") and bounds is None:
                raise _refuse(f"{_deparse(arg)} has no clipping bounds in the data card, so its "
                              f"sum and average cannot be released.")
            signature = json.dumps(_strip(arg), sort_keys=True)
            if signature not in value_refs:
                value_refs.append(signature)
                values.append((arg, ValueColumn(tuple(bounds) if bounds else None)))
            index = value_refs.index(signature)
            if bounds is not None and values[index][1].bounds is None:
                values[index] = (arg, ValueColumn(tuple(bounds)))
        outputs.append(Output(name, kind, index, digits))
    _check_groups(node, keys)
    order, limit = _ordering(node, outputs)
    plan = DpPlan(sql="", outputs=outputs, key_count=len(keys),
                  values=[v for _, v in values], measures=[], settings=settings,
                  rho=settings.rho_per_query, delta=0.0,
                  l0=settings.max_groups_per_person if keys else 1,
                  public_keys=_public_keys(keys, resolver, resolved.settings.max_rows),
                  personal=bool(persons), order=order, limit=limit)
    plan.measures = _measures(plan)
    if persons:
        _noise_parameters(plan)
    plan.sql = _rewrite(node, keys, [a for a, _ in values], plan, persons, resolver)
    return plan


def _strip(expression: Any) -> Any:
    """An expression without positions or aliases (to compare two expressions)."""
    if isinstance(expression, dict):
        return {k: _strip(v) for k, v in expression.items()
                if k not in ("query_location", "query_location_length", "alias")}
    if isinstance(expression, list):
        return [_strip(v) for v in expression]
    return expression


def _deparse(expression: dict[str, Any]) -> str:
    """SQL text of one expression (DuckDB's own rendering)."""
    node = _empty_select()
    node["select_list"] = [dict(expression, alias="")]
    text = disclosure._deserialize(node)
    return text.removeprefix("SELECT ").strip()


@functools.lru_cache(maxsize=1)
def _empty_select_json() -> str:
    return json.dumps(disclosure.parse_node("SELECT 1"))


def _empty_select() -> dict[str, Any]:
    return json.loads(_empty_select_json())


def _equality_pairs(condition: dict[str, Any] | None) -> list[tuple[list[str], list[str]]]:
    """(left column names, right column names) of every ``a = b`` in an AND of conditions."""
    pairs, stack = [], [condition] if condition else []
    while stack:
        item = stack.pop()
        if item.get("type") == "CONJUNCTION_AND":
            stack.extend(item.get("children", []))
        elif item.get("type") == "COMPARE_EQUAL" and all(
                item[s].get("class") == "COLUMN_REF" for s in ("left", "right")):
            pairs.append(tuple([str(n).lower() for n in item[s]["column_names"]]
                               for s in ("left", "right")))
    return pairs


def _aggregate(item: dict[str, Any], person_columns: set[str]
               ) -> tuple[str, int | None, dict[str, Any] | None]:
    """(kind, round digits, argument column) of one aggregate output. Raises Rejected."""
    digits = None
    target = item
    name = str(item.get("function_name", "")).lower()
    if name == "round":
        args = disclosure._args(item)
        target = args[0]
        if len(args) == 2:
            try:
                digits = int(str(args[1]["literal"]["text"]))
            except (KeyError, TypeError, ValueError):
                raise _refuse("round(avg(col), n) needs a whole number n.") from None
        name = str(target.get("function_name", "")).lower()
        if name not in ("avg", "mean"):
            raise _refuse("Only averages can be rounded.")
    if not disclosure._plain_aggregate(target):
        raise _refuse("Aggregates must be applied to plain columns, one per output column.")
    args = disclosure._args(target)
    if name == "count_star":
        return "rows", None, None
    column = str(args[0]["column_names"][-1]).lower()
    if name == "count" and target.get("distinct"):
        if column not in person_columns:
            raise _refuse("count(DISTINCT ...) is available for the person column only.")
        return "persons", None, None
    if name == "count":
        return "count", None, args[0]
    if name == "sum":
        return "sum", None, args[0]
    if name in ("avg", "mean"):
        return "avg", digits, args[0]
    raise _refuse(f"The aggregate {name}() is not available with differential privacy.")


def _ordering(node: dict[str, Any], outputs: list[Output]
              ) -> tuple[list[tuple[int, bool]], tuple[int, int] | None]:
    """ORDER BY and LIMIT, applied by the portal to the released (noisy) rows: ORDER BY names
    output columns (by position, alias or the same expression); LIMIT and OFFSET are
    constants."""
    selected = [json.dumps(_strip(dict(item, alias="")), sort_keys=True)
                for item in node["select_list"]]
    names = [o.name.lower() for o in outputs]
    order: list[tuple[int, bool]] = []
    limit = None
    for modifier in node.get("modifiers", []):
        if modifier.get("type") == "ORDER_MODIFIER":
            for entry in modifier.get("orders", []):
                order.append((_output_index(entry["expression"], selected, names),
                              entry.get("type") == "DESCENDING"))
        elif modifier.get("type") == "LIMIT_MODIFIER":
            limit = (_constant(modifier.get("limit"), None), _constant(modifier.get("offset"), 0))
        else:
            raise _refuse("DISTINCT is not available; use GROUP BY.")
    return order, limit


def _constant(expression: dict[str, Any] | None, default: int | None) -> int:
    if expression is None:
        return default if default is not None else 2**62
    try:
        value = int(str(expression["literal"]["text"]))
    except (KeyError, TypeError, ValueError):
        raise _refuse("LIMIT and OFFSET must be whole numbers.") from None
    if value < 0:
        raise _refuse("LIMIT and OFFSET must be whole numbers.")
    return value


def _output_index(expression: dict[str, Any], selected: list[str], names: list[str]) -> int:
    if expression.get("class") == "CONSTANT":
        position = _constant(expression, 0)
        if 1 <= position <= len(selected):
            return position - 1
    if expression.get("class") == "COLUMN_REF" and len(expression["column_names"]) == 1 and \
            str(expression["column_names"][0]).lower() in names:
        return names.index(str(expression["column_names"][0]).lower())
    signature = json.dumps(_strip(dict(expression, alias="")), sort_keys=True)
    if signature in selected:
        return selected.index(signature)
    raise _refuse("ORDER BY may name only selected columns (the released rows are sorted).")


def _check_groups(node: dict[str, Any], keys: list[dict[str, Any]]) -> None:
    """Every GROUP BY entry is one of the selected keys (by position, alias or expression)."""
    if node.get("group_sets") and len(node["group_sets"]) > 1:
        raise _refuse("GROUPING SETS, ROLLUP and CUBE are not available.")
    if node.get("aggregate_handling") == "FORCE_AGGREGATES":
        return
    selected = [json.dumps(_strip(k), sort_keys=True) for k in keys]
    aliases = {str(k.get("alias", "")).lower() for k in keys if k.get("alias")}
    for group in node.get("group_expressions", []):
        if group.get("class") == "CONSTANT":
            continue  # a position; DuckDB refuses one that names an aggregate
        if group.get("class") == "COLUMN_REF" and len(group["column_names"]) == 1 and \
                str(group["column_names"][0]).lower() in aliases:
            continue
        if json.dumps(_strip(group), sort_keys=True) not in selected:
            raise _refuse("Every GROUP BY key must also be selected.")
    if keys and not node.get("group_expressions"):
        raise _refuse("Selected keys need a GROUP BY.")


def _check_person_joins(from_table: dict[str, Any], persons: list[tuple[str, str]]) -> None:
    """All personal tables are joined to each other on their person columns."""
    if len(persons) < 2:
        return
    parent = {alias.lower(): alias.lower() for alias, _ in persons}
    person_of = {alias.lower(): column.lower() for alias, column in persons}

    def find(a: str) -> str:
        while parent[a] != a:
            a = parent[a]
        return a

    def leaves(item: dict[str, Any]) -> list[str]:
        if item.get("type") == "JOIN":
            return leaves(item["left"]) + leaves(item["right"])
        if item.get("type") == "BASE_TABLE":
            return [str(item.get("alias") or item["table_name"]).lower()]
        return []

    for item in walk(from_table):
        if item.get("type") != "JOIN":
            continue
        for column in item.get("using_columns", []) or []:
            sides = [[a for a in leaves(item[s]) if person_of.get(a) == str(column).lower()]
                     for s in ("left", "right")]
            for a, b in itertools.product(*sides):
                parent[find(a)] = find(b)
        for left, right in _equality_pairs(item.get("condition")):
            if len(left) == 2 and len(right) == 2 and left[0] in parent and \
                    right[0] in parent and person_of[left[0]] == left[1] and \
                    person_of[right[0]] == right[1]:
                parent[find(left[0])] = find(right[0])
    if len({find(a) for a in parent}) != 1:
        raise _refuse("Personal tables must be joined on the person column (ON a.person_id = "
                      "b.person_id, or USING (person_id)).")


def _public_keys(keys: list[dict[str, Any]], resolver: ColumnResolver,
                 max_rows: int) -> list[tuple[Any, ...]] | None:
    """The cross product of the keys' public value sets, or None when a key has none."""
    if not keys:
        return [()]
    sets = []
    for key in keys:
        info = resolver.info(key)
        if info is None or info.dp_keys is None:
            return None
        sets.append(list(info.dp_keys))
    size = math.prod(len(s) for s in sets)
    if size > max_rows:
        raise _refuse(f"The public groups of these keys ({size}) are more than the "
                      f"{max_rows} rows a result may hold.")
    return [tuple(k) for k in itertools.product(*sets)]


def _measures(plan: DpPlan) -> list[Measure]:
    wanted: list[Measure] = []

    def need(m: Measure) -> None:
        if m not in wanted:
            wanted.append(m)

    if plan.public_keys is None:
        need(Measure("persons"))  # partition selection releases noisy person counts
    for out in plan.outputs:
        if out.kind in ("rows", "persons"):
            need(Measure(out.kind))
        elif out.kind == "count":
            need(Measure("count", out.index))
        elif out.kind in ("sum", "avg"):
            need(Measure("sum", out.index))
            need(Measure("count", out.index))
    return wanted


def linf(plan: DpPlan, measure: Measure) -> int:
    """How much one person can change this measurement in one group (in its units)."""
    k = plan.settings.max_rows_per_group
    if measure.kind == "persons":
        return 1
    if measure.kind == "sum":
        return k * 2 ** QUANTUM_BITS
    return k


def l2(plan: DpPlan, measure: Measure) -> int:
    """L2 sensitivity over all groups: a person is in at most ``l0`` groups (rounded up to a
    whole number, as OpenDP's integer metrics need)."""
    return math.ceil(math.sqrt(plan.l0)) * linf(plan, measure)


def _noise_parameters(plan: DpPlan) -> None:
    from portal.query import dp_noise

    share = plan.rho / max(1, len(plan.measures))
    for measure in plan.measures:
        plan.sigmas[measure.alias] = dp_noise.gaussian_sigma(l2(plan, measure), share)
    if plan.public_keys is None:
        persons = Measure("persons").alias
        plan.delta = plan.settings.selection_delta
        plan.selection = (plan.sigmas[persons],
                          dp_noise.selection_threshold(plan.sigmas[persons], plan.l0,
                                                       share, plan.delta))


def _select_item(sql: str) -> dict[str, Any]:
    return disclosure._template(sql)


def _rewrite(node: dict[str, Any], keys: list[dict[str, Any]], values: list[dict[str, Any]],
             plan: DpPlan, persons: list[tuple[str, str]], resolver: ColumnResolver) -> str:
    base = copy.deepcopy(node)
    totality.make_total(base, resolver.same_type_equalities)
    refs = [f"{disclosure._quote(a)}.{disclosure._quote(p)}" for a, p in persons]
    person = f"coalesce({', '.join(refs)})" if len(refs) > 1 else (refs[0] if refs else "NULL")
    select = [_select_item(f"SELECT {person} AS {_P}pid")]
    for i, key in enumerate(keys):
        select.append(dict(totality.wrap_try(dict(key, alias="")), alias=f"{_P}k{i}"))
    for j, value in enumerate(values):
        select.append(dict(copy.deepcopy(value), alias=f"{_P}v{j}"))
    base["select_list"] = select
    base.update(group_expressions=[], group_sets=[], aggregate_handling="STANDARD_HANDLING",
                having=None, modifiers=[])
    inner = disclosure._deserialize(base)
    key_list = ", ".join(f"{_P}k{i}" for i in range(len(keys)))
    by_person = f"{_P}pid" + (f", {key_list}" if keys else "")
    # 1. one row per (person, group): each person's contribution, bounded to k rows' worth
    k = plan.settings.max_rows_per_group
    contributions = [f"{_P}pid"] + [f"{_P}k{i}" for i in range(len(keys))]
    contributions.append(f"least(count(*), {k}) AS {_P}r")
    for j in range(len(values)):
        contributions.append(f"least(count({_P}v{j}), {k}) AS {_P}c{j}")
        if plan.values[j].bounds is not None:
            contributions.append(f"CAST(round(least(count({_P}v{j}), {k}) * "
                                 f"coalesce(avg({_quantised(plan, j)}), 0)) AS BIGINT) "
                                 f"AS {_P}s{j}")
    per_person = (f"SELECT {', '.join(contributions)} FROM ({inner}) {_P}b "
                  f"GROUP BY {by_person}")
    # 2. each person in at most l0 groups (chosen by a hash of the keys: data-independent)
    if keys:
        per_person = (f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {_P}pid "
                      f"ORDER BY hash({key_list}), {key_list}) AS {_P}gr FROM ({per_person}) "
                      f"{_P}p) {_P}q WHERE {_P}gr <= {plan.l0}")
    # 3. the exact bounded aggregates per group
    columns = [f"{_P}k{i}" for i in range(len(keys))]
    for measure in plan.measures:
        columns.append(f"{_measure_sql(measure)} AS {measure.alias}")
    sql = f"SELECT {', '.join(columns)} FROM ({per_person}) {_P}t"
    if keys:
        sql += f" GROUP BY {key_list}"
    return sql


def _quantised(plan: DpPlan, j: int) -> str:
    """Value ``j`` clipped to its bounds, centred and in quantisation steps (an integer in
    [-2^QUANTUM_BITS, 2^QUANTUM_BITS])."""
    column = plan.values[j]
    low, high = column.bounds
    return (f"round((least(greatest(TRY_CAST({_P}v{j} AS DOUBLE), {low!r}), {high!r}) - "
            f"{column.mid!r}) / {column.step!r})")


def _measure_sql(measure: Measure) -> str:
    if measure.kind == "rows":
        return f"CAST(coalesce(sum({_P}r), 0) AS BIGINT)"
    if measure.kind == "persons":
        return f"count({_P}pid)"
    column = "c" if measure.kind == "count" else "s"
    return f"CAST(coalesce(sum({_P}{column}{measure.value}), 0) AS BIGINT)"
