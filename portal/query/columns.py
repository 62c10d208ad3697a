"""Which table column a column reference of a query names, and what the release says about it
(type, public DP metadata). Used by disclosure control to reason about a parsed query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portal.policy.engine import ResolvedTier


@dataclass(frozen=True)
class ColumnInfo:
    table: str
    column: str
    type: str | None  # release type, None when a tier transform changes it
    dp_bounds: tuple[float, float] | None = None
    dp_keys: tuple[Any, ...] | None = None


class ColumnResolver:
    """Resolves ``alias.column`` and bare ``column`` references against the tables a query's
    FROM clause reads (``aliases``: alias or table name → table name)."""

    def __init__(self, resolved: ResolvedTier, release: Any, aliases: dict[str, str]) -> None:
        self.resolved, self.release, self.aliases = resolved, release, aliases

    def info(self, ref: dict[str, Any]) -> ColumnInfo | None:
        """The column a COLUMN_REF names, or None when it is not one table's column (an
        output alias, an unknown or ambiguous name)."""
        if ref.get("class") != "COLUMN_REF":
            return None
        names = [str(n).lower() for n in ref.get("column_names", [])]
        if len(names) == 2:
            table = self.aliases.get(names[0])
            candidates = [table] if table else []
        elif len(names) == 1:
            candidates = sorted({t for t in self.aliases.values()
                                 if names[0] in self.resolved.tables[t].columns})
        else:
            return None
        column = names[-1]
        if len(candidates) != 1 or column not in self.resolved.tables[candidates[0]].columns:
            return None
        table = candidates[0]
        if column in self.resolved.tables[table].transforms:
            return ColumnInfo(table, column, None)
        spec = None
        release_table = getattr(self.release, "tables", {}).get(table)
        for col in getattr(release_table, "columns", ()):
            if col.name == column:
                spec = col
        if spec is None:
            return ColumnInfo(table, column, None)
        return ColumnInfo(table, column, spec.type, spec.dp_bounds, spec.dp_keys)

    def same_type_equalities(self, condition: dict[str, Any]) -> bool:
        """Whether every ``a = b`` in an AND of column equalities compares two columns of
        one known type (no implicit cast)."""
        stack = [condition]
        while stack:
            item = stack.pop()
            if item.get("type") == "CONJUNCTION_AND":
                stack.extend(item.get("children", []))
                continue
            left, right = self.info(item.get("left", {})), self.info(item.get("right", {}))
            if left is None or right is None or left.type is None or left.type != right.type:
                return False
        return True


def from_aliases(from_table: dict[str, Any]) -> dict[str, str]:
    """alias (or table name) → table name, for every base table in FROM (lower case)."""
    found: dict[str, str] = {}
    stack = [from_table]
    while stack:
        item = stack.pop()
        if item.get("type") == "JOIN":
            stack.extend([item["left"], item["right"]])
        elif item.get("type") == "BASE_TABLE":
            name = str(item["table_name"]).lower()
            found[str(item.get("alias") or name).lower()] = name
    return found
