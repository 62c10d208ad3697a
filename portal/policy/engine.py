"""Resolving a tier against a release: exactly which tables, columns, row filters and transforms a
grant at that tier sees.

Rules (the table in ``access_policies/README.md`` is tested against this code):

- Default deny: a table or column that no rule allows is absent.
- A table is present when its most specific table rule (a named table beats ``"*"``) allows it;
  ``deny: true`` on that rule removes the table whatever its columns say.
- For a column, every rule that matches it is a candidate: from the named table's rule and from
  the ``"*"`` rule; each matches by name (most specific), by pattern (``*_source_value``) or by
  ``"*"`` (least specific). The most specific match wins, comparing the column match first and
  then the table rule (named over ``"*"``); at the same level deny beats allow.
- Row filters come only from a named table rule. Transforms of the named table beat those of the
  ``"*"`` rule; a ``"*"`` transform applies to every present table that has the column.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from portal.canonical import canonical_json
from portal.errors import NotFound
from portal.policy.loader import column_matches
from portal.policy.model import DatasetPolicy, TableRule, Tier


@dataclass(frozen=True)
class ResolvedTable:
    name: str
    columns: tuple[str, ...]  # in release order
    row_filter: str | None = None
    transforms: dict[str, dict[str, Any]] = field(default_factory=dict)
    person_column: str | None = None


@dataclass(frozen=True)
class ResolvedTier:
    """What one tier of one dataset exposes from one release. ``spec_json()`` is deterministic:
    it is hashed (with the release version) to name the governed extract."""

    dataset_id: str
    tier: str
    release_version: str
    tables: dict[str, ResolvedTable]
    settings: Tier

    def spec(self) -> dict[str, Any]:
        """The parts that decide the extract's contents (not limits or budgets)."""
        return {
            "dataset": self.dataset_id,
            "tables": {name: asdict(t) for name, t in sorted(self.tables.items())},
        }

    def spec_json(self) -> str:
        return canonical_json(self.spec())

    def extract_key(self) -> str:
        """Content address of the extract: hash of release version + dataset + spec."""
        return self._extract_key

    @functools.cached_property
    def _extract_key(self) -> str:  # the tier is frozen: computed once
        payload = json.dumps([self.release_version, self.dataset_id, self.spec_json()])
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]

    @property
    def person_columns(self) -> dict[str, str]:
        return {n: t.person_column for n, t in self.tables.items() if t.person_column}


def tier_of(policy: DatasetPolicy, tier_name: str) -> Tier:
    """The named tier. Raises NotFound(code='unknown_tier')."""
    tier = policy.tiers.get(tier_name)
    if tier is None:
        raise NotFound("unknown_tier", f"Dataset {policy.dataset} has no tier {tier_name!r}.")
    return tier


def _column_rank(pattern: str, column: str) -> int:
    """3 for an exact name, 2 for a pattern, 1 for "*", 0 for no match."""
    if pattern == column:
        return 3
    if pattern == "*":
        return 1
    return 2 if ("*" in pattern or "?" in pattern) and column_matches(pattern, column) else 0


def column_decision(column: str, rules: list[tuple[int, TableRule]]) -> bool:
    """Whether ``column`` is exposed, given (table rank, rule) candidates (2 named, 1 "*")."""
    best: tuple[int, int, int] | None = None  # (column rank, table rank, deny?)
    for table_rank, rule in rules:
        for allow, names in ((0, rule.allow_columns), (1, rule.deny_columns)):
            for pattern in names:
                rank = _column_rank(pattern, column)
                if rank:
                    key = (rank, table_rank, allow)
                    best = key if best is None or key > best else best
    return best is not None and best[2] == 0


def table_rules(tier: Tier, table: str) -> list[tuple[int, TableRule]] | None:
    """The candidate rules for a table, or None when the table is absent."""
    named, star = tier.tables.get(table), tier.tables.get("*")
    deciding = named if named is not None else star
    if deciding is None or deciding.deny:
        return None
    return [(rank, rule) for rank, rule in ((2, named), (1, star))
            if rule is not None and not rule.deny]


def resolve_tier(policy: DatasetPolicy, tier_name: str, release: Any) -> ResolvedTier:
    """Resolve ``tier_name`` of ``policy`` against ``release`` (a Release: tables with column
    names and person columns). Raises NotFound for an unknown tier. A table with no exposed
    column is absent."""
    tier = tier_of(policy, tier_name)
    tables: dict[str, ResolvedTable] = {}
    for name, table in sorted(release.tables.items()):
        rules = table_rules(tier, name)
        if rules is None:
            continue
        columns = tuple(c for c in table.column_names if column_decision(c, rules))
        if not columns:
            continue
        named = tier.tables.get(name)
        transforms: dict[str, dict[str, Any]] = {}
        for _rank, rule in sorted(rules, key=lambda r: r[0]):  # "*" first, named overrides
            for column, transform in rule.transforms.items():
                if column in columns:
                    transforms[column] = transform.model_dump(exclude_none=True)
        # The release's person column, even when the tier hides it: disclosure control refuses
        # aggregate queries over a personal table whose person column is absent.
        person = table.person_column
        tables[name] = ResolvedTable(
            name=name, columns=columns,
            row_filter=named.row_filter if named is not None else None,
            transforms=dict(sorted(transforms.items())), person_column=person,
        )
    return ResolvedTier(policy.dataset, tier_name, release.version, tables, tier)
