"""The governed execution pipeline for one query, after the grant and budget checks:
preflight → (aggregate tiers) shape check and verified rewrite → extract → worker → bounded
result → disclosure control. No store access here; the service records the audit event."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portal.config import Settings
from portal.errors import Rejected
from portal.policy.engine import ResolvedTier
from portal.query import disclosure, dp, dp_noise
from portal.query.dp import DpPlan
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
    # DP tiers: the 95% half-width of every cell (None for group keys), and the privacy
    # accounting of this answer (cost, whether it was replayed from the ledger, budget left)
    half_widths: list[list[float | None]] | None = None
    privacy: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The stable automation contract (docs: access_policies/README.md#query-output)."""
        shown = {
            "columns": self.columns, "rows": self.rows, "row_count": self.row_count,
            "truncated": self.truncated, "suppressed": self.suppressed,
            "query_id": self.query_id, "tier": self.tier, "duration_ms": self.duration_ms,
            "suppressed_cells": self.suppressed_cells, "row_suppressed": self.row_suppressed,
            "cell_suppressed": self.cell_suppressed,
        }
        if self.half_widths is not None:
            shown["half_widths"] = self.half_widths
            shown["privacy"] = self.privacy
        return shown


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
    dp_plan: DpPlan | None = None  # DP tiers, queries over personal tables


def prepare(sql: str, resolved: ResolvedTier, release: Any = None) -> Prepared:
    """Preflight plus, for aggregate tiers, the shape check and verified rewrite (for DP
    tiers, the bounded rewrite and noise plan; ``release`` supplies the data card's DP
    metadata and column types). Raises Rejected."""
    pre = preflight(sql, resolved.tables)
    plan = None
    if resolved.settings.result_mode == "aggregate":
        if resolved.settings.disclosure == "dp":
            planned = dp.plan_dp(pre, resolved, release)
            if planned is not None and planned.personal:
                return Prepared(pre, None, planned.sql, planned)
        plan = disclosure.plan_aggregate(pre, resolved, release)
    return Prepared(pre, plan, plan.sql if plan else sql)


def _pad(started: float, bucket: float) -> None:
    """Sleep until the next multiple of ``bucket`` seconds since ``started``."""
    if bucket <= 0:
        return
    elapsed = time.monotonic() - started
    time.sleep(max(0.0, math.ceil(max(elapsed, 1e-9) / bucket) * bucket - elapsed))


DP_FAILURE = "The query could not be answered. In privacy-protected tiers every failure " \
             "looks the same, because which queries fail could reveal data."


def execute_dp(settings: Settings, pool: WorkerPool, release: Any, resolved: ResolvedTier,
               prepared: Prepared, query_id: str) -> QueryResult:
    """Run a DP plan: exact bounded aggregates in the worker, noise here. The run time is
    padded to the tier's time bucket, failures included. Raises Rejected: ``schema_error``
    (names the query got wrong; nothing was read) or ``query_error`` (one generic message for
    every other failure)."""
    plan = prepared.dp_plan
    assert plan is not None and resolved.settings.dp is not None
    tier = resolved.settings
    path: Path = build_extract(settings, release, resolved)
    started = time.monotonic()
    try:
        raw = pool.run(str(path), plan.sql, dp.MAX_GROUPS_FETCHED, tier.time_limit_seconds)
        if len(raw.rows) > dp.MAX_GROUPS_FETCHED:
            raise Rejected("query_error", DP_FAILURE)
        answer = dp_noise.release(plan, raw.rows, tier.max_rows)
    except Rejected as exc:
        if exc.code == "query_error" and exc.context.get("kind") in SCHEMA_ERRORS:
            raise Rejected("schema_error", _schema_message(exc.message)) from None
        if exc.code in ("server_busy",):
            raise
        raise Rejected("query_error", DP_FAILURE) from None
    finally:
        _pad(started, tier.dp.time_bucket_seconds)
    rows = [[jsonable(v) for v in row] for row in answer.rows]
    return QueryResult(
        columns=answer.columns, rows=rows, row_count=len(rows), truncated=answer.truncated,
        suppressed=0, query_id=query_id, duration_ms=0.0, tier=resolved.tier,
        dataset_id=resolved.dataset_id, result_mode="aggregate",
        row_suppressed=[False] * len(rows),
        cell_suppressed=[[False] * len(answer.columns) for _ in rows],
        half_widths=answer.half_widths,
        privacy={"mechanism": "zCDP", "cost_rho": plan.rho, "delta": plan.delta,
                 "cached": False, "groups": "public" if plan.public_keys is not None
                 else "selected"})


def _schema_message(message: str) -> str:
    """A binder message about the rewritten query, in the user's terms."""
    text = message.replace("__dp_b.", "").replace("__dp_t.", "")
    if "__dp_" in text:
        return "The query names a column or table that is not in your extract."
    return text


def replay(answer: dict[str, Any], query_id: str, resolved: ResolvedTier) -> QueryResult:
    """A DP answer from the ledger (an identical earlier query), at no cost. Raises
    Rejected(``query_error``) when the earlier query failed."""
    if "failed" in answer:
        raise Rejected("query_error", DP_FAILURE)
    rows = answer["rows"]
    return QueryResult(
        columns=answer["columns"], rows=rows, row_count=len(rows),
        truncated=bool(answer["truncated"]), suppressed=0, query_id=query_id, duration_ms=0.0,
        tier=resolved.tier, dataset_id=resolved.dataset_id, result_mode="aggregate",
        row_suppressed=[False] * len(rows),
        cell_suppressed=[[False] * len(answer["columns"]) for _ in rows],
        half_widths=answer["half_widths"], privacy=dict(answer["privacy"], cached=True))


def ledger_answer(result: QueryResult) -> dict[str, Any]:
    """What the ledger keeps of a DP answer for replay (already noisy; nothing exact)."""
    return {"columns": result.columns, "rows": result.rows, "truncated": result.truncated,
            "half_widths": result.half_widths, "privacy": result.privacy}


def execute(settings: Settings, pool: WorkerPool, release: Any, resolved: ResolvedTier,
            prepared: Prepared, query_id: str) -> QueryResult:
    """Run a prepared query on the tier's extract and apply disclosure control.
    Raises Rejected (timeouts, resources, DuckDB errors)."""
    if prepared.dp_plan is not None:
        return execute_dp(settings, pool, release, resolved, prepared, query_id)
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
