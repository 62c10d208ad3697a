"""Closing the error and timing oracles of aggregate tiers (both disclosure modes).

A query in an aggregate tier shows only aggregates, but two side channels would still carry one
row's value: whether the query *fails* (``CASE WHEN <one person matches> THEN CAST(x AS
UTINYINT) END`` fails only if such a row exists) and how *long* it takes (``levenshtein(repeat(
...))`` only for matching rows). Both are closed here, on DuckDB's own parse tree:

- **Allowlist of expressions.** Every expression node is a column, a constant, a comparison,
  AND/OR/NOT, IN, BETWEEN, CASE, IS [NOT] NULL, COALESCE, a cast, or a function from
  :data:`SCALAR_FUNCTIONS`: each of them does a constant amount of work per row, bounded by the
  stored values. Anything else (``repeat``, ``levenshtein`` and every other string builder or
  distance, regular expressions, ``error``, random and volatile functions, lists, lambdas,
  ...) is refused with ``aggregate_function_not_allowed``.
- **Total functions.** Every row-level expression that is not a bare column or constant (the
  WHERE clause, join conditions other than column equalities of one type, group keys) is wrapped
  in DuckDB's ``TRY(...)`` and every ``CAST`` becomes ``TRY_CAST``: an overflow, a failed cast
  (explicit or implicit) or a division by zero gives NULL for that row instead of failing the
  query, so failure no longer depends on the data.

The executor also pads the run time of ``dp`` tiers to a time bucket and reports every runtime
failure as one generic error (:mod:`portal.query.executor`).
"""

from __future__ import annotations

import copy
from typing import Any

from portal.errors import Rejected
from portal.query.preflight import walk

# Scalar functions with constant work per row (bounded by the stored value's size) that
# cannot fail once wrapped in TRY. Lower case, as DuckDB's parse tree names them.
SCALAR_FUNCTIONS = frozenset({
    "+", "-", "*", "/", "//", "%",
    "~~", "!~~", "~~*", "!~~*", "like", "not_like", "ilike", "not_ilike",
    "prefix", "suffix", "starts_with", "ends_with", "contains",
    "lower", "upper", "lcase", "ucase", "length",
    "abs", "sign", "round", "floor", "ceil", "ceiling", "least", "greatest",
    "ifnull", "nullif",
    "year", "month", "day", "quarter", "dayofweek", "isodow", "dayofyear", "week",
    "date_part", "datepart", "extract", "date_trunc", "datetrunc", "date_diff", "datediff",
})
_OPERATORS = frozenset({"OPERATOR_NOT", "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL",
                        "COMPARE_IN", "COMPARE_NOT_IN", "OPERATOR_COALESCE", "OPERATOR_TRY"})
_PLAIN_CLASSES = frozenset({"COLUMN_REF", "CONSTANT", "COMPARISON", "CONJUNCTION", "BETWEEN",
                            "CASE", "CAST", "TYPE"})
# Expression classes checked elsewhere (aggregates, stars, subqueries, windows are refused or
# verified by the shape check before this module runs).
_ELSEWHERE = frozenset({"STAR", "COLUMNS", "SUBQUERY", "WINDOW"})


_NAMED = ", ".join(sorted(n for n in SCALAR_FUNCTIONS if n.isalpha()))


def _refuse(name: str) -> Rejected:
    shown = name if name.replace("_", "").isalnum() and len(name) <= 40 else "this function"
    return Rejected("aggregate_function_not_allowed",
                    f"The function or operator {shown} is not available in aggregate tiers: it "
                    f"can fail or take more time depending on one row's value. Allowed: "
                    f"comparisons, AND/OR/NOT, IN, BETWEEN, CASE, IS NULL, COALESCE, casts, "
                    f"arithmetic, LIKE, and {_NAMED}.")


def check_expressions(node: dict[str, Any], aggregates: frozenset[str]) -> None:
    """Refuse any expression outside the allowlist. Raises Rejected
    (``aggregate_function_not_allowed``)."""
    for item in walk(node):
        cls = item.get("class")
        if cls is None or cls in _PLAIN_CLASSES or cls in _ELSEWHERE:
            continue
        if cls == "OPERATOR":
            if item.get("type") not in _OPERATORS:
                raise _refuse(str(item.get("type", "")).lower().removeprefix("operator_"))
            continue
        if cls == "FUNCTION":
            name = str(item.get("function_name", "")).lower()
            if name in SCALAR_FUNCTIONS or name in aggregates:
                continue
            raise _refuse(name)
        raise _refuse(str(cls).lower())


def _plain(expression: dict[str, Any]) -> bool:
    return expression.get("class") in ("COLUMN_REF", "CONSTANT")


def wrap_try(expression: dict[str, Any]) -> dict[str, Any]:
    """``TRY(expression)`` (keeping its alias); bare columns and constants are returned as
    they are (they cannot fail)."""
    if _plain(expression) or expression.get("type") == "OPERATOR_TRY":
        return expression
    inner = copy.deepcopy(expression)
    alias = inner.get("alias", "")
    inner["alias"] = ""
    return {"class": "OPERATOR", "type": "OPERATOR_TRY", "alias": alias,
            "query_location": inner.get("query_location", 0), "children": [inner]}


def _casts_to_try(node: Any) -> None:
    for item in walk(node):
        if item.get("class") == "CAST":
            item["try_cast"] = True


def _column_equalities(condition: dict[str, Any]) -> bool:
    stack = [condition]
    while stack:
        item = stack.pop()
        if item.get("type") == "CONJUNCTION_AND":
            stack.extend(item.get("children", []))
        elif not (item.get("type") == "COMPARE_EQUAL" and all(
                item[side].get("class") == "COLUMN_REF" for side in ("left", "right"))):
            return False
    return True


def make_total(node: dict[str, Any], typed_equal: Any = None) -> None:
    """Rewrite the row-level expressions of a SELECT node in place so they cannot fail:
    casts become TRY_CAST, and WHERE, join conditions and group keys are wrapped in TRY.

    A join condition made only of column equalities stays as it is (so DuckDB keeps its hash
    join) when ``typed_equal(condition)`` says both sides of every equality have one type (no
    implicit cast that could fail); otherwise it is wrapped too."""
    _casts_to_try(node)
    if node.get("where_clause") is not None:
        node["where_clause"] = wrap_try(node["where_clause"])
    stack = [node.get("from_table") or {}]
    while stack:
        item = stack.pop()
        if item.get("type") != "JOIN":
            continue
        stack.extend([item["left"], item["right"]])
        condition = item.get("condition")
        if condition is None:
            continue
        if _column_equalities(condition) and typed_equal is not None and typed_equal(condition):
            continue
        item["condition"] = wrap_try(condition)


def make_keys_total(node: dict[str, Any], is_key: Any) -> None:
    """Wrap the group-key expressions of the select list and GROUP BY in TRY, identically,
    so DuckDB still matches them."""
    node["select_list"] = [wrap_try(e) if is_key(e) else e for e in node["select_list"]]
    node["group_expressions"] = [e if e.get("class") == "CONSTANT" else wrap_try(e)
                                 for e in node.get("group_expressions", [])]
