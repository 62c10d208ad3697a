"""Preflight: an allowlist check of untrusted SQL with DuckDB's own parser, before execution.

Preflight gives clear, early errors; it is not the control — the governed extract is (a query
that slipped past preflight still sees only its grant's rows and columns, in a locked,
read-only connection inside a resource-limited worker). Checks, in order:

1. text at most ``MAX_SQL_BYTES`` (64 KB);
2. ``json_serialize_sql`` parses it: exactly one statement, of a read-only type (SELECT, WITH,
   FROM-first, DESCRIBE, SUMMARIZE, SHOW TABLES; EXPLAIN [ANALYZE] of one of those);
3. the parse tree is not deeper than ``MAX_TREE_DEPTH``;
4. tables are the extract's own (or CTEs); table functions come from ``TABLE_FUNCTIONS``;
   dynamic SQL, file readers, globbing, settings and metadata functions are refused.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import duckdb

from portal.errors import Rejected
from portal.query.worker import connect_locked

MAX_SQL_BYTES = 64 * 1024
MAX_TREE_DEPTH = 600
TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
# Scalar/aggregate functions refused wherever they appear (prefix match, lower case).
FORBIDDEN_FUNCTION_PREFIXES = (
    "read_", "duckdb_", "pragma_", "query", "json_execute_serialized_sql", "glob", "sniff_",
    "parquet_", "iceberg_", "delta_", "current_setting", "getvariable", "getenv",
    "sql_auto_complete", "which_secret", "load_", "install_", "checkpoint", "force_checkpoint",
    "enable_", "disable_", "set_", "current_database", "current_catalog", "current_schema",
    "icu_", "test_", "repeat_row", "write_", "copy_",
)
_SHOW_SPECIAL_ALLOWED = {'"tables"'}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_ALLOWED_SHAPES = ("Only read-only queries are allowed: SELECT (or WITH ... SELECT, FROM-first), "
                   "DESCRIBE, SUMMARIZE, SHOW TABLES, or EXPLAIN of one of these.")


@dataclass(frozen=True)
class Preflight:
    """What preflight learned about one accepted statement."""

    sql: str
    sql_hash: str
    kind: str  # select | describe | summarize | show_tables
    statement: dict[str, Any]  # the parsed SELECT node (DuckDB's JSON)
    tables: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    table_functions: tuple[str, ...] = ()
    ctes: tuple[str, ...] = ()
    explain: bool = False
    analyze: bool = False


def sql_hash(sql: str) -> str:
    return hashlib.sha256(sql.encode("utf-8", "surrogatepass")).hexdigest()


_parser_lock = threading.Lock()
_parser: duckdb.DuckDBPyConnection | None = None


def _serialize(sql: str) -> dict[str, Any]:
    global _parser
    with _parser_lock:
        if _parser is None:
            _parser = connect_locked(duckdb)
        cursor = _parser.cursor()
    try:
        text = cursor.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0]
    except duckdb.Error:
        raise Rejected("sql_syntax_error", "The query could not be parsed.") from None
    finally:
        cursor.close()
    try:
        return json.loads(text)
    except RecursionError:
        raise Rejected("query_too_complex", "The query is nested too deeply.") from None


def _strip_explain(sql: str) -> tuple[str, bool, bool]:
    """Remove a leading EXPLAIN [ANALYZE] (after comments); report which were present."""
    try:
        tokens = duckdb.tokenize(sql)
    except (duckdb.Error, RuntimeError):
        return sql, False, False
    words = []
    for i, (start, kind) in enumerate(tokens):
        if kind == duckdb.token_type.comment:
            continue
        end = tokens[i + 1][0] if i + 1 < len(tokens) else len(sql)
        words.append((start, end, sql[start:end].strip().lower()))
        if len(words) == 3:
            break
    if not words or words[0][2] != "explain":
        return sql, False, False
    if len(words) > 1 and words[1][2] == "analyze":
        return sql[words[1][1]:], True, True
    return sql[words[0][1]:], True, False


def preflight(sql: str, tables: Iterable[str]) -> Preflight:
    """Check ``sql`` against the read-only allowlist for an extract holding ``tables``.

    Raises Rejected with codes: ``sql_too_large``, ``empty_query``, ``sql_syntax_error``,
    ``statement_not_allowed``, ``multiple_statements``, ``query_too_complex``,
    ``unknown_table``, ``function_not_allowed``. Messages never contain server paths."""
    if not isinstance(sql, str):
        raise Rejected("invalid_sql", "The query must be text.")
    if len(sql.encode("utf-8", "surrogatepass")) > MAX_SQL_BYTES:
        raise Rejected("sql_too_large", f"The query is longer than {MAX_SQL_BYTES // 1024} KB.")
    if not sql.strip():
        raise Rejected("empty_query", "The query is empty.")
    body, explain, analyze = _strip_explain(sql)
    parsed = _serialize(body)
    if parsed.get("error"):
        if parsed.get("error_type") == "not implemented":
            raise Rejected("statement_not_allowed", _ALLOWED_SHAPES)
        if "depth" in str(parsed.get("error_message", "")).lower():
            raise Rejected("query_too_complex", "The query is nested too deeply.")
        raise Rejected("sql_syntax_error", _syntax_message(parsed))
    statements = parsed.get("statements", [])
    if not statements:
        raise Rejected("empty_query", "The query is empty.")
    if len(statements) != 1:
        raise Rejected("multiple_statements", "Send exactly one statement per query.")
    node = statements[0]["node"]
    _check_depth(node)
    return _inspect(sql, node, {t.lower() for t in tables}, explain, analyze)


def _syntax_message(parsed: dict[str, Any]) -> str:
    message = str(parsed.get("error_message", "")).splitlines()[0][:300]
    if "/" in message or "\\" in message:
        return "The query could not be parsed."
    return f"The query could not be parsed: {message}"


def _check_depth(node: Any) -> None:
    stack = [(node, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            raise Rejected("query_too_complex", "The query is nested too deeply.")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))


def walk(node: Any) -> Iterable[dict[str, Any]]:
    """Every dict in a parse tree (iterative; order unspecified)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, dict | list))


def _name(text: str) -> str:
    return repr(text) if _IDENT.match(text) else "that name"


def _inspect(sql: str, node: dict[str, Any], allowed: set[str], explain: bool,
             analyze: bool) -> Preflight:
    nodes = list(walk(node))
    ctes = {str(e["key"]).lower() for n in nodes if isinstance(n.get("cte_map"), dict)
            for e in n["cte_map"].get("map", [])}
    tables, functions, table_functions = set(), set(), set()
    for item in nodes:
        _check_node(item, allowed, ctes, tables, table_functions)
        if item.get("class") in ("FUNCTION", "AGGREGATE", "WINDOW") and "function_name" in item:
            name = str(item["function_name"]).lower()
            if item.get("schema") or item.get("catalog"):
                raise Rejected("function_not_allowed", "Qualified function names are not allowed.")
            if name.startswith(FORBIDDEN_FUNCTION_PREFIXES):
                raise Rejected("function_not_allowed",
                               f"The function {_name(name)} is not allowed in queries.")
            functions.add(name)
    return Preflight(
        sql=sql, sql_hash=sql_hash(sql), kind=_kind(node), statement=node,
        tables=tuple(sorted(tables)), functions=tuple(sorted(functions)),
        table_functions=tuple(sorted(table_functions)), ctes=tuple(sorted(ctes)),
        explain=explain, analyze=analyze,
    )


def _kind(node: dict[str, Any]) -> str:
    """``describe``/``summarize``/``show_tables`` only when the whole statement is exactly that
    (a SHOW nested inside a larger SELECT makes it a ``select``)."""
    source = node.get("from_table") or {}
    bare = (node.get("type") == "SELECT_NODE" and source.get("type") == "SHOW_REF"
            and [s.get("class") for s in node.get("select_list", [])] == ["STAR"]
            and not node.get("modifiers") and node.get("where_clause") is None
            and not node.get("group_expressions") and not node.get("cte_map", {}).get("map"))
    if not bare:
        return "select"
    return {"DESCRIBE": "describe", "SUMMARY": "summarize"}.get(source.get("show_type"),
                                                                "show_tables")


def _check_node(item: dict[str, Any], allowed: set[str], ctes: set[str], tables: set[str],
                table_functions: set[str]) -> None:
    kind = item.get("type")
    if kind == "BASE_TABLE":
        name = str(item.get("table_name", ""))
        schema = str(item.get("schema_name", "")).lower()
        if item.get("catalog_name") or schema not in ("", "main"):
            raise Rejected("unknown_table", "Only the tables of your extract can be queried.")
        if item.get("at_clause"):
            raise Rejected("statement_not_allowed", "Time-travel clauses are not allowed.")
        if name.lower() not in allowed and name.lower() not in ctes:
            raise Rejected("unknown_table", f"There is no table {_name(name)} in your extract.")
        if name.lower() in allowed:
            tables.add(name.lower())
    elif kind == "TABLE_FUNCTION":
        name = str(item.get("function", {}).get("function_name", "")).lower()
        if name not in TABLE_FUNCTIONS:
            raise Rejected("function_not_allowed",
                           f"The table function {_name(name)} is not allowed; allowed: "
                           f"{', '.join(sorted(TABLE_FUNCTIONS))}.")
        table_functions.add(name)
    elif kind == "SHOW_REF":
        show = item.get("show_type")
        if show in ("DESCRIBE", "SUMMARY") or (
                show == "SHOW_SPECIAL" and item.get("table_name") in _SHOW_SPECIAL_ALLOWED):
            return
        raise Rejected("statement_not_allowed", _ALLOWED_SHAPES)
