"""Disclosure control for ``aggregate`` tiers: only verifiable aggregate shapes run, every
output row is backed by at least ``min_persons`` distinct persons, counts are rounded.

The allowed shape (``SHAPE_HELP``) is one SELECT over the extract's tables (joins allowed, no
subqueries, CTEs, set operations, window functions or DISTINCT) whose output columns are group
keys or plain aggregates: ``count``, ``sum``, ``avg``, ``stddev``/``variance`` of a column (or
``count(*)``), optionally ``round(avg(x), n)``. Person columns (``person_id``) may appear only
in ``count(DISTINCT ...)``/``count(...)`` and in equality join conditions between two columns —
never in WHERE, GROUP BY, HAVING, ORDER BY or as a selected value.

Verification is done by the engine, not trusted to the user: the query's parse tree is extended
with ``count(DISTINCT t.person_id)`` for every personal table ``t`` it reads (and, per aggregate,
the same count restricted to rows where the aggregated column is not null). Rows backed by fewer
than ``min_persons`` persons are suppressed (all values hidden, marked, moved to the end); cells
whose own backing is too small are hidden and marked. Suppressed values are ``None`` with a
marker — never 0. ``count`` and ``sum`` results are rounded to ``round_counts_to``.

Residual risks are written down in docs/security-properties.md (differencing of two large
groups that differ by one person is mitigated by rounding, not prevented).
"""

from __future__ import annotations

import copy
import decimal
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import duckdb

from portal.errors import InternalError, Rejected
from portal.policy.engine import ResolvedTier
from portal.query import totality
from portal.query.columns import ColumnResolver, from_aliases
from portal.query.preflight import Preflight, walk

SHAPE_HELP = (
    "Aggregate access allows one SELECT over your tables (joins on person_id allowed; no "
    "subqueries, CTEs, UNION, window functions or DISTINCT) whose columns are group keys or "
    "count(*), count(col), count(DISTINCT col), sum(col), avg(col), stddev(col), variance(col) "
    "of plain columns (round(avg(col), n) too), with filters in WHERE and groups in GROUP BY. "
    "Person identifiers may appear only in count(...) and in join conditions."
)
COUNTING = frozenset({"count", "count_star", "sum"})
ALLOWED_AGGREGATES = COUNTING | {"avg", "mean", "stddev", "stddev_samp", "stddev_pop",
                                 "var_samp", "var_pop", "variance"}
_PREFIX = "__portal_"
# Functions whose only purpose is to fail on a condition (an existence oracle).
RAISING = frozenset({"error", "raise_error"})


@dataclass
class AggregatePlan:
    """How to run and post-process one aggregate query."""

    sql: str  # the rewritten SQL the worker runs
    user_columns: int  # the first N output columns are the user's
    group_columns: list[int] = field(default_factory=list)  # extra columns: persons per row
    cell_columns: dict[int, list[int]] = field(default_factory=dict)  # user col → extras
    rounded: set[int] = field(default_factory=set)  # user columns holding counts or sums


@dataclass
class Disclosed:
    rows: list[list[Any]]
    row_suppressed: list[bool]
    cell_suppressed: list[list[bool]]
    suppressed_rows: int
    suppressed_cells: int


_agg_lock = threading.Lock()
_aggregate_names: frozenset[str] | None = None


def aggregate_names() -> frozenset[str]:
    """Every aggregate function DuckDB knows (so an unknown one is never mistaken for scalar)."""
    global _aggregate_names
    with _agg_lock:
        if _aggregate_names is None:
            con = duckdb.connect(":memory:")
            rows = con.execute("SELECT DISTINCT lower(function_name) FROM duckdb_functions()"
                               " WHERE function_type = 'aggregate'").fetchall()
            con.close()
            _aggregate_names = frozenset(r[0] for r in rows) | {"count_star"}
        return _aggregate_names


def _refuse(detail: str) -> Rejected:
    """The refusal names the one rule the query broke (the whole shape is in SHAPE_HELP and the
    SQL guide, not repeated in every message)."""
    return Rejected("aggregate_shape_not_allowed", detail)


def plan_aggregate(pre: Preflight, resolved: ResolvedTier,
                   release: Any = None) -> AggregatePlan | None:
    """Check the shape of an aggregate-tier query and build its verified rewrite (made total:
    see :mod:`portal.query.totality`; ``release`` supplies column types for that).

    Returns None for statements that show no data values (a bare DESCRIBE or SHOW TABLES).
    Raises Rejected(``aggregate_shape_not_allowed``) for any shape it cannot verify and
    Rejected(``aggregate_function_not_allowed``) for expressions that could fail or vary in
    cost by row."""
    node = check_aggregate(pre, resolved)
    if node is None:
        return None
    aliases = _person_aliases(node["from_table"], resolved)
    resolver = ColumnResolver(resolved, release, from_aliases(node["from_table"]))
    return _rewrite(node, aliases, resolver)


def check_aggregate(pre: Preflight, resolved: ResolvedTier) -> dict[str, Any] | None:
    """The shape checks shared by both disclosure modes; returns the SELECT node (None for a
    bare DESCRIBE or SHOW TABLES). Raises Rejected."""
    if pre.kind in ("describe", "show_tables"):
        return None
    if pre.kind == "summarize":
        raise _refuse("SUMMARIZE shows minimum and maximum values and is not available.")
    if pre.explain:
        raise _refuse("EXPLAIN is not available in aggregate tiers (plans show row counts "
                      "and estimates).")
    node = pre.statement
    _check_statement(node)
    totality.check_expressions(node, aggregate_names())
    aliases = _person_aliases(node["from_table"], resolved)
    _check_person_refs(node, {p for _, p in aliases})
    return node


def _check_statement(node: dict[str, Any]) -> None:
    if node.get("type") != "SELECT_NODE":
        raise _refuse("UNION, INTERSECT, EXCEPT and recursive queries are not available.")
    if node.get("cte_map", {}).get("map"):
        raise _refuse("WITH (common table expressions) is not available.")
    for modifier in node.get("modifiers", []):
        if modifier.get("type") not in ("ORDER_MODIFIER", "LIMIT_MODIFIER"):
            raise _refuse("DISTINCT is not available; use GROUP BY.")
    if node.get("qualify") is not None or node.get("sample") is not None:
        raise _refuse("QUALIFY and SAMPLE are not available.")
    aggregates = aggregate_names()
    for item in walk(node):
        cls = item.get("class")
        if cls == "FUNCTION" and str(item.get("function_name", "")).lower() in RAISING:
            raise _refuse("Functions that raise errors on purpose are not available.")
        if cls == "SUBQUERY" or item.get("type") in ("SUBQUERY", "TABLE_FUNCTION"):
            raise _refuse("Subqueries and table functions are not available.")
        if cls == "WINDOW":
            raise _refuse("Window functions are not available.")
        if cls in ("STAR", "COLUMNS"):
            raise _refuse("SELECT * is not available; name group keys and aggregates.")
        name = str(item.get("function_name", "")).lower()
        if cls == "FUNCTION" and name in aggregates and name not in ALLOWED_AGGREGATES:
            raise _refuse(f"The aggregate {name}() can reveal one person's value and is not "
                          f"available.")
        if cls == "FUNCTION" and name in ALLOWED_AGGREGATES and not _plain_aggregate(item):
            # also in HAVING and ORDER BY: a conditional aggregate is a tracker
            raise _refuse("Aggregates must be applied to plain columns (no FILTER, CASE, "
                          "arithmetic or DISTINCT inside, except count(DISTINCT col)).")
    grouped = bool(node.get("group_expressions")) or node.get("aggregate_handling") == \
        "FORCE_AGGREGATES"
    for expression in node.get("select_list", []):
        _check_output(expression, aggregates, grouped)


def _contains_aggregate(expression: Any, aggregates: frozenset[str]) -> bool:
    return any(n.get("class") == "FUNCTION" and str(n.get("function_name", "")).lower()
               in aggregates for n in walk(expression))


def _args(function: dict[str, Any]) -> list[dict[str, Any]]:
    """A function node's argument expressions (DuckDB 2.x keeps them under ``arguments``)."""
    if "arguments" in function:
        return [a["expression"] for a in function["arguments"]]
    return list(function.get("children", []))


def _plain_aggregate(expression: dict[str, Any]) -> bool:
    name = str(expression.get("function_name", "")).lower()
    if expression.get("class") != "FUNCTION" or name not in ALLOWED_AGGREGATES:
        return False
    if expression.get("filter") is not None or expression.get("order_bys", {}).get("orders"):
        return False
    if expression.get("distinct") and name != "count":
        return False
    children = _args(expression)
    if name == "count_star":
        return not children
    return len(children) == 1 and children[0].get("class") == "COLUMN_REF"


def _check_output(expression: dict[str, Any], aggregates: frozenset[str],
                  grouped: bool) -> None:
    if not _contains_aggregate(expression, aggregates):
        if grouped or not any(n.get("class") == "COLUMN_REF" for n in walk(expression)):
            return  # a group key (DuckDB itself refuses ungrouped columns) or a constant
        raise _refuse("Row-level values are not available: aggregate them, or GROUP BY them.")
    if _plain_aggregate(expression):
        return
    name = str(expression.get("function_name", "")).lower()
    children = _args(expression) if expression.get("class") == "FUNCTION" else []
    if (name == "round" and children and _plain_aggregate(children[0])
            and str(children[0].get("function_name")).lower() not in COUNTING
            and all(c.get("class") == "CONSTANT" for c in children[1:])):
        return
    raise _refuse("Aggregates must be applied to plain columns, one per output column "
                  "(no FILTER, CASE or arithmetic inside or around count and sum).")


def _person_aliases(from_table: dict[str, Any], resolved: ResolvedTier) -> list[tuple[str, str]]:
    """(alias, person column) for every personal base table the query reads."""
    found = []
    stack = [from_table]
    while stack:
        item = stack.pop()
        kind = item.get("type")
        if kind == "JOIN":
            stack.extend([item["left"], item["right"]])
        elif kind == "BASE_TABLE":
            name = str(item["table_name"]).lower()
            table = resolved.tables.get(name)
            if table is None:  # a CTE name; refused earlier, kept as a guard
                raise _refuse("Only the tables of your extract can be read.")
            if item.get("column_name_alias"):  # renaming would hide person columns
                raise _refuse("Column aliases on tables (t(a, b)) are not available.")
            if table.person_column:
                if table.person_column not in table.columns:
                    raise _refuse(f"Table {name} cannot be verified by person.")
                found.append((item.get("alias") or name, table.person_column))
        elif kind != "EMPTY":
            raise _refuse("Only tables and joins are allowed in FROM.")
    return found


def _check_person_refs(node: dict[str, Any], person_columns: set[str]) -> None:
    if not person_columns:
        return
    allowed: set[int] = set()
    for item in walk(node):
        if item.get("class") == "FUNCTION" and str(item.get("function_name")).lower() == "count":
            allowed.update(id(c) for c in _args(item))
        if item.get("type") == "JOIN" and item.get("condition") is not None:
            allowed.update(_equijoin_refs(item["condition"]))
    for item in walk(node):
        if (item.get("class") == "COLUMN_REF" and id(item) not in allowed
                and str(item["column_names"][-1]).lower() in person_columns):
                raise _refuse("Person identifiers cannot be filtered, grouped, ordered or "
                              "selected.")


def _equijoin_refs(condition: dict[str, Any]) -> set[int]:
    """Column refs that sit in ``a.col = b.col`` comparisons (possibly AND-ed together)."""
    refs: set[int] = set()
    stack = [condition]
    while stack:
        item = stack.pop()
        if item.get("type") == "CONJUNCTION_AND":
            stack.extend(item.get("children", []))
        elif item.get("type") == "COMPARE_EQUAL" and all(
                item[side].get("class") == "COLUMN_REF" for side in ("left", "right")):
            refs.update({id(item["left"]), id(item["right"])})
    return refs


_helper_lock = threading.Lock()
_helper: duckdb.DuckDBPyConnection | None = None


def _sql_helper(statement: str, parameter: str) -> Any:
    """Run one (de)serialisation statement on a shared in-memory connection (opening a
    connection costs tens of milliseconds; a cursor per call is cheap)."""
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = duckdb.connect(":memory:", config={"enable_external_access": False,
                                                         "lock_configuration": True})
        cursor = _helper.cursor()
    try:
        return cursor.execute(statement, [parameter]).fetchone()[0]
    finally:
        cursor.close()


def parse_node(sql: str) -> dict[str, Any]:
    """The SELECT node of trusted SQL text (for building rewrites). Raises InternalError when
    it does not parse: json_serialize_sql reports failures in its result, not by raising."""
    parsed = json.loads(_sql_helper("SELECT json_serialize_sql(?)", sql))
    if parsed.get("error"):
        raise InternalError()
    return parsed["statements"][0]["node"]


def _template(sql: str) -> dict[str, Any]:
    return parse_node(sql)["select_list"][0]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _rewrite(node: dict[str, Any], aliases: list[tuple[str, str]],
             resolver: ColumnResolver) -> AggregatePlan:
    rewritten = copy.deepcopy(node)
    names = aggregate_names()
    totality.make_total(rewritten, resolver.same_type_equalities)
    totality.make_keys_total(rewritten, lambda e: not _contains_aggregate(e, names))
    select = rewritten["select_list"]
    plan = AggregatePlan(sql="", user_columns=len(select))
    for i, item in enumerate(node["select_list"]):
        name = str(item.get("function_name", "")).lower()
        if item.get("class") == "FUNCTION" and name in COUNTING:
            plan.rounded.add(i)
    for k, (alias, person) in enumerate(aliases):
        ref = f"{_quote(alias)}.{_quote(person)}"
        plan.group_columns.append(len(select))
        select.append(_template(f"SELECT count(DISTINCT {ref}) AS {_PREFIX}n_{k}"))
        for i, item in enumerate(node["select_list"]):
            target = item if _is_agg_over_column(item) else _inner_agg(item)
            if target is None:
                continue
            extra = _template(f"SELECT count(DISTINCT {ref}) FILTER (WHERE {_PREFIX}arg IS NOT "
                              f"NULL) AS {_PREFIX}c_{i}_{k}")
            extra["filter"]["children"][0] = copy.deepcopy(_args(target)[0])
            plan.cell_columns.setdefault(i, []).append(len(select))
            select.append(extra)
    plan.sql = _deserialize(rewritten)
    return plan


def _is_agg_over_column(item: dict[str, Any]) -> bool:
    return (item.get("class") == "FUNCTION" and _plain_aggregate(item)
            and str(item.get("function_name")).lower() != "count_star")


def _inner_agg(item: dict[str, Any]) -> dict[str, Any] | None:
    children = _args(item) if item.get("class") == "FUNCTION" else []
    if children and _is_agg_over_column(children[0]):
        return children[0]
    return None


def _deserialize(node: dict[str, Any]) -> str:
    payload = json.dumps({"error": False, "statements": [{"node": node, "named_param_map": []}]})
    return _sql_helper("SELECT json_deserialize_sql(?::JSON)", payload)


def apply(plan: AggregatePlan, rows: list[tuple[Any, ...]], min_persons: int,
          round_to: int) -> Disclosed:
    """Suppress rows and cells backed by fewer than ``min_persons`` persons and round counts.

    Suppressed rows keep no value (not even group keys) and move to the end; suppressed cells
    are None with a marker. Never shows a suppressed value as 0."""
    kept, hidden = [], []
    cells_hidden = 0
    for row in rows:
        persons = [row[i] or 0 for i in plan.group_columns]
        if persons and min(persons) < min_persons:
            hidden.append(([None] * plan.user_columns, [True] * plan.user_columns))
            continue
        values, marks = list(row[:plan.user_columns]), [False] * plan.user_columns
        for column, extras in plan.cell_columns.items():
            if min(row[i] or 0 for i in extras) < min_persons:
                values[column], marks[column] = None, True
                cells_hidden += 1
        for column in plan.rounded:
            if values[column] is not None and not marks[column]:
                values[column] = round_value(values[column], round_to)
        kept.append((values, marks))
    ordered = kept + hidden
    return Disclosed(
        rows=[v for v, _ in ordered], row_suppressed=[False] * len(kept) + [True] * len(hidden),
        cell_suppressed=[m for _, m in ordered], suppressed_rows=len(hidden),
        suppressed_cells=cells_hidden,
    )


def round_value(value: Any, step: int) -> Any:
    """Round a count or sum to the nearest multiple of ``step`` (ties away from zero)."""
    if isinstance(value, decimal.Decimal) and value.is_finite():
        # sum() of integers comes back from DuckDB as a HUGEINT (a Decimal in Arrow)
        value = int(value) if value == value.to_integral_value() else float(value)
    if step <= 1 or not isinstance(value, int | float) or isinstance(value, bool):
        return value
    if isinstance(value, int):
        sign = -1 if value < 0 else 1
        return sign * ((abs(value) + step // 2) // step) * step
    return float(round(value / step) * step)
