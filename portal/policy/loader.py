"""Loading ``access_policies/*.yaml`` strictly, and checking policies against releases.

Every problem is reported with its file and line, all at once; nothing is half-applied: either
every file loads and passes every check, or :class:`~portal.errors.ConfigError` is raised and
the caller keeps no policy at all.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portal.errors import ConfigError
from portal.policy.model import DatasetPolicy, TableRule
from portal.query.worker import connect_locked
from portal.yamlstrict import load_strict

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
_PATTERN = re.compile(r"^[a-z0-9_*?]{1,64}$")
# Functions a row filter may not call (they read files, run dynamic SQL or reveal internals).
_FILTER_FORBIDDEN_PREFIXES = ("read_", "duckdb_", "pragma_", "query", "json_execute", "glob",
                              "current_setting", "getvariable", "getenv", "parquet_")


class PolicySet(dict[str, DatasetPolicy]):
    """The loaded policies by dataset id, remembering each one's file and line map."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: dict[str, tuple[str, Any]] = {}
        self.checked: set[tuple[str, str]] = set()  # (dataset, release) pairs already checked
        self.resolved: dict[tuple[str, ...], Any] = {}  # tiers resolved against a release

    def where(self, dataset: str, *path: str | int) -> str:
        """``file:line`` for a key path inside a dataset's policy (best effort)."""
        name, reader = self.sources.get(dataset, (f"{dataset}.yaml", None))
        line = reader.line_for(("tiers", *path)) if reader is not None else None
        return f"{name}:{line}" if line else name


def load_policies(directory: Path) -> PolicySet:
    """Load every ``*.yaml`` policy file in ``directory``.

    Raises ConfigError listing every problem (``file:line: message``) when any file is invalid:
    malformed YAML, unknown or duplicate keys, tags, anchors, wrong types, a file name that does
    not match its ``dataset``, a dataset defined twice, a malformed name or pattern, a row filter
    that does not parse as one boolean expression. Never returns a partial set."""
    if directory is None or not directory.is_dir():
        raise ConfigError(problems=["access_policies: the policies folder does not exist"])
    problems: list[str] = []
    policies = PolicySet()
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    for path in files:
        try:
            policy, reader = load_strict(path, DatasetPolicy, name=path.name)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if policy.dataset != path.stem:
            problems.append(f"{path.name}:{reader.line_for(('dataset',)) or 1}: dataset "
                            f"{policy.dataset!r} must match the file name ({path.stem}.yaml)")
        if policy.dataset in policies:
            problems.append(f"{path.name}: dataset {policy.dataset!r} is defined twice")
            continue
        policies[policy.dataset] = policy
        policies.sources[policy.dataset] = (path.name, reader)
        problems.extend(_static_problems(policies, policy))
    if problems:
        raise ConfigError(problems=problems)
    return policies


def _static_problems(policies: PolicySet, policy: DatasetPolicy) -> list[str]:
    problems = []
    for tier_name, tier in policy.tiers.items():
        for table, rule in tier.tables.items():
            where = policies.where(policy.dataset, tier_name, "tables", table)
            if table != "*" and not _NAME.match(table):
                problems.append(f"{where}: table name {table!r} must be lowercase letters, "
                                f"digits and _ (or \"*\")")
            for key in ("allow_columns", "deny_columns"):
                for name in getattr(rule, key):
                    if not _PATTERN.match(name):
                        problems.append(f"{where}: {key}: {name!r} is not a column name or "
                                        f"pattern (lowercase letters, digits, _, * and ?)")
            for name in rule.transforms:
                if not _NAME.match(name):
                    problems.append(f"{where}: transforms: {name!r} is not a column name")
            if rule.row_filter is not None:
                if table == "*":
                    problems.append(f"{where}: row_filter is only allowed on a named table")
                else:
                    problem = row_filter_problem(rule.row_filter)
                    if problem:
                        problems.append(f"{where}: row_filter: {problem}")
        if not any(not rule.deny for rule in tier.tables.values()):
            problems.append(f"{policies.where(policy.dataset, tier_name)}: tier {tier_name!r} "
                            f"exposes no table")
    return problems


def row_filter_problem(expression: str, table: str = "t") -> str | None:
    """Why a row filter is not one plain boolean expression over its table, or None.

    Parsed with DuckDB's own parser: exactly one SELECT whose WHERE clause is the filter; no
    subqueries, other tables, table functions, or functions that read files or run SQL."""
    sql = f'SELECT 1 FROM "{table}" WHERE ({expression})'
    parsed = _serialize(sql)
    if parsed is None or parsed.get("error") or len(parsed.get("statements", [])) != 1:
        return "does not parse as one SQL boolean expression"
    node = parsed["statements"][0]["node"]
    plain = (node.get("type") == "SELECT_NODE" and not node.get("modifiers")
             and not node.get("group_expressions") and node.get("having") is None
             and not node.get("cte_map", {}).get("map")
             and node.get("from_table", {}).get("table_name") == table)
    if not plain:
        return "does not parse as one SQL boolean expression"
    where = node.get("where_clause")
    for node in _walk(where):
        if node.get("type") in ("SUBQUERY", "SELECT_NODE") or node.get("class") == "SUBQUERY":
            return "subqueries are not allowed"
        name = str(node.get("function_name", "")).lower()
        if name and name.startswith(_FILTER_FORBIDDEN_PREFIXES):
            return f"function {name}() is not allowed"
    return None


def filter_columns(expression: str) -> set[str]:
    """Column names a (valid) row filter refers to, lower-cased."""
    parsed = _serialize(f'SELECT 1 FROM "t" WHERE ({expression})') or {}
    names = set()
    for statement in parsed.get("statements", []):
        for node in _walk(statement["node"].get("where_clause")):
            if node.get("class") == "COLUMN_REF":
                names.add(str(node["column_names"][-1]).lower())
    return names


def _serialize(sql: str) -> dict[str, Any] | None:
    import duckdb  # only for policies with row filters: `portal access list` starts without it

    con = connect_locked(duckdb)
    try:
        text = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0]
        return json.loads(text)
    except (duckdb.Error, ValueError, RecursionError):
        return None
    finally:
        con.close()


def _walk(node: Any):
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check_against_releases(policies: PolicySet | Mapping[str, DatasetPolicy],
                           releases: Mapping[str, Any]) -> None:
    """Check policies against the current releases they govern (``releases``: dataset id →
    :class:`~portal.catalog.releases.Release`; datasets without a release are skipped).

    A table, column or transform the release lacks is an error; so is a row filter naming a
    column its table lacks, and an aggregate tier that hides a table's person column (the
    engine needs it to count persons). Raises ConfigError listing every problem."""
    problems = policy_problems(policies, releases)
    if problems:
        raise ConfigError(problems=problems)


def policy_problems(policies: Mapping[str, DatasetPolicy],
                    releases: Mapping[str, Any]) -> list[str]:
    """The problems :func:`check_against_releases` would raise, as a list."""
    problems: list[str] = []
    for dataset, policy in policies.items():
        release = releases.get(dataset)
        if release is None:
            continue
        for tier_name, tier in policy.tiers.items():
            for table, rule in tier.tables.items():
                where = (policies.where(dataset, tier_name, "tables", table)
                         if isinstance(policies, PolicySet) else f"{dataset}.yaml")
                problems.extend(f"{where}: {p}" for p in _table_problems(table, rule, release))
            if tier.result_mode == "aggregate":
                problems.extend(_person_column_problems(policies, dataset, tier_name, release))
    return problems


def _table_problems(table: str, rule: TableRule, release: Any) -> list[str]:
    if table == "*":
        return []
    if table not in release.tables:
        return [f"table {table!r} is not in release {release.version} of {release.dataset_id}"]
    columns = set(release.tables[table].column_names)
    problems = []
    for key in ("allow_columns", "deny_columns"):
        for name in getattr(rule, key):
            if "*" in name or "?" in name:
                continue
            if name not in columns:
                problems.append(f"{key}: column {table}.{name} is not in the release")
    types = {c.name: str(c.type).upper() for c in release.tables[table].columns}
    for name, transform in rule.transforms.items():
        if name not in columns:
            problems.append(f"transforms: column {table}.{name} is not in the release")
            continue
        expected = _transform_types(transform)
        if not any(types[name].startswith(t) for t in expected):
            problems.append(f"transforms: column {table}.{name} is {types[name]}; this "
                            f"transform needs {' or '.join(expected)}")
    if rule.row_filter:
        missing = sorted(filter_columns(rule.row_filter) - columns)
        if missing:
            problems.append(f"row_filter names {', '.join(missing)}, not in table {table}")
    return problems


def _person_column_problems(policies: Mapping[str, DatasetPolicy], dataset: str,
                            tier_name: str, release: Any) -> list[str]:
    from portal.policy.engine import resolve_tier  # the engine imports this module

    resolved = resolve_tier(policies[dataset], tier_name, release)
    problems = []
    for name, table in resolved.tables.items():
        person = release.tables[name].person_column
        if person and person not in table.columns:
            where = (policies.where(dataset, tier_name) if isinstance(policies, PolicySet)
                     else f"{dataset}.yaml")
            problems.append(f"{where}: aggregate tier {tier_name!r} must expose {name}.{person} "
                            f"(the engine counts persons with it)")
    return problems


_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
            "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL", "INT", "REAL")


def _transform_types(transform: Any) -> tuple[str, ...]:
    if transform.band:
        return _NUMERIC
    if transform.date_to_year:
        return ("DATE", "TIMESTAMP")
    return ("VARCHAR",)


def column_matches(pattern: str, column: str) -> bool:
    """Whether a column name or pattern (``*``, ``*_source_value``) matches ``column``."""
    return fnmatch.fnmatchcase(column, pattern)
