"""The governed execution pipeline for one query, after the grant and budget checks:
preflight → (aggregate tiers) shape check and verified rewrite → extract → worker → bounded
result → disclosure control. No store access here; the service records the audit event."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portal.config import Settings
from portal.errors import Rejected
from portal.policy.engine import ResolvedTier
from portal.query import disclosure
from portal.query.extracts import build_extract
from portal.query.pool import WorkerPool
from portal.query.preflight import Preflight, preflight
from portal.query.worker import plain

# DuckDB errors raised before any row is read: they name only query text and schema.
SCHEMA_ERRORS = frozenset({"BinderException", "CatalogException", "ParserException"})


@dataclass
class QueryResult:
    """A governed result. ``rows`` holds at most the tier's ``max_rows``; ``truncated`` says
    when there were more. In aggregate tiers, ``row_suppressed[i]`` marks a suppressed row (all
    its values None) and ``cell_suppressed[i][j]`` a suppressed cell — never shown as 0."""

    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    suppressed: int  # rows suppressed by disclosure control
    query_id: str
    duration_ms: float
    tier: str
    dataset_id: str = ""
    result_mode: str = "rows"
    suppressed_cells: int = 0
    row_suppressed: list[bool] = field(default_factory=list)
    cell_suppressed: list[list[bool]] = field(default_factory=list)
    types: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The stable automation contract (docs: access_policies/README.md#query-output)."""
        return {
            "columns": self.columns, "rows": self.rows, "row_count": self.row_count,
            "truncated": self.truncated, "suppressed": self.suppressed,
            "query_id": self.query_id, "tier": self.tier, "duration_ms": self.duration_ms,
            "suppressed_cells": self.suppressed_cells, "row_suppressed": self.row_suppressed,
            "cell_suppressed": self.cell_suppressed,
        }


def new_query_id() -> str:
    return uuid.uuid4().hex


def jsonable(value: Any) -> Any:
    """A result value as plain JSON-friendly Python (see :func:`portal.query.worker.plain`:
    workers already send values in this form; disclosure control keeps them so)."""
    return plain(value)


@dataclass
class Prepared:
    pre: Preflight
    plan: disclosure.AggregatePlan | None
    sql_to_run: str


def prepare(sql: str, resolved: ResolvedTier) -> Prepared:
    """Preflight plus, for aggregate tiers, the shape check and verified rewrite.
    Raises Rejected."""
    pre = preflight(sql, resolved.tables)
    plan = None
    if resolved.settings.result_mode == "aggregate":
        plan = disclosure.plan_aggregate(pre, resolved)
    return Prepared(pre, plan, plan.sql if plan else sql)


def execute(settings: Settings, pool: WorkerPool, release: Any, resolved: ResolvedTier,
            prepared: Prepared, query_id: str) -> QueryResult:
    """Run a prepared query on the tier's extract and apply disclosure control.
    Raises Rejected (timeouts, resources, DuckDB errors)."""
    tier = resolved.settings
    path: Path = build_extract(settings, release, resolved)
    try:
        raw = pool.run(str(path), prepared.sql_to_run, tier.max_rows, tier.time_limit_seconds)
    except Rejected as exc:
        if tier.result_mode == "aggregate" and exc.code == "query_error" and \
                exc.context.get("kind") not in SCHEMA_ERRORS:
            # Runtime errors can quote a row's value (e.g. a failed cast): hide them.
            raise Rejected("query_error", "The query failed while running; details are hidden "
                                          "in aggregate tiers because they can contain data "
                                          "values.") from None
        raise
    rows = raw.rows
    truncated = len(rows) > tier.max_rows
    rows = rows[:tier.max_rows]
    result = QueryResult(columns=list(raw.columns), rows=[], row_count=0, truncated=truncated,
                         suppressed=0, query_id=query_id, duration_ms=0.0, tier=resolved.tier,
                         dataset_id=resolved.dataset_id, result_mode=tier.result_mode,
                         types=list(raw.types))
    if prepared.plan is not None:
        plan = prepared.plan
        shown = disclosure.apply(plan, rows, tier.min_persons or 2, tier.round_counts_to)
        result.columns = result.columns[:plan.user_columns]
        result.types = result.types[:plan.user_columns]
        result.rows = [[jsonable(v) for v in row] for row in shown.rows]
        result.row_suppressed = shown.row_suppressed
        result.cell_suppressed = shown.cell_suppressed
        result.suppressed = shown.suppressed_rows
        result.suppressed_cells = shown.suppressed_cells
    else:
        result.rows = [[jsonable(v) for v in row] for row in rows]
        result.row_suppressed = [False] * len(result.rows)
        result.cell_suppressed = [[False] * len(result.columns) for _ in result.rows]
    result.row_count = len(result.rows)
    return result
