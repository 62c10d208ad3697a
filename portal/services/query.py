"""Use cases of governed SQL: run a query, its history, saved queries, the schema a grant sees,
and whether a result may be downloaded.

:func:`run_query` writes exactly one audit event per attempt, allowed or refused, holding the SQL
text (first 8 KB) and hash, tables and functions referenced, the decision and reason code, and
counts — never result values (ARCHITECTURE section 6, property 4).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from portal import audit, authz
from portal.access.grants import Grant, check_active_grant
from portal.errors import (
    Denied,
    InternalError,
    InvalidInput,
    NotFound,
    PortalError,
    QuotaExceeded,
    Rejected,
    UserError,
)
from portal.identity import Principal
from portal.policy.engine import ResolvedTier
from portal.policy.model import DpSettings, Tier
from portal.query import dp_noise, executor
from portal.query.executor import QueryResult
from portal.query.extracts import build_extract, extract_schema
from portal.query.pool import WorkerPool, get_pool
from portal.query.preflight import sql_hash
from portal.services.attempts import describe_failure, use_case
from portal.services.context import Context
from portal.services.policies import resolved_tier
from portal.store import dp_ledger
from portal.store.db import transaction, utcnow

AUDIT_SQL_CHARS = 8192
ACTION = "query.run"

__all__ = ["QueryResult", "run_query", "query_history", "save_query", "list_saved_queries",
           "delete_saved_query", "share_saved_query", "schema_for", "can_download",
           "download_result", "extract_for", "query_budget", "close_abandoned_runs",
           "preview_query", "privacy_budget", "privacy_status"]


def _iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def budget_use(ctx: Context, principal: Principal, grant: Grant, tier: Tier,
               now: datetime | None = None) -> list[dict[str, Any]]:
    """The user's query budget for this dataset and tier: one ``{"window", "used", "limit"}``
    per window (``minute``, ``day``), counting every attempt that passed the grant check,
    refused ones included (probing costs budget too)."""
    moment = now or datetime.now(UTC)
    windows = []
    for window, limit, label in ((timedelta(minutes=1), tier.budget.per_minute, "minute"),
                                 (timedelta(days=1), tier.budget.per_day, "day")):
        used = ctx.conn.execute(
            "SELECT count(*) FROM query_runs WHERE user_id = ? AND dataset_id = ? AND tier = ?"
            " AND started_at > ?",
            (principal.user_id, grant.dataset_id, grant.tier, _iso(moment - window))
        ).fetchone()[0]
        windows.append({"window": label, "used": int(used), "limit": limit})
    return windows


def check_budget(ctx: Context, principal: Principal, grant: Grant, tier: Tier,
                 now: datetime | None = None) -> None:
    """Raises QuotaExceeded(``query_budget_exceeded``) when the user's per-minute or per-day
    budget for this dataset and tier is used up (see :func:`budget_use`)."""
    for window in budget_use(ctx, principal, grant, tier, now):
        if window["used"] >= window["limit"]:
            raise QuotaExceeded("query_budget_exceeded",
                                f"You have used your budget of {window['limit']} queries per "
                                f"{window['window']}.")


@use_case("query.budget", "dataset:{dataset_id}")
def query_budget(ctx: Context, principal: Principal, dataset_id: str) -> dict[str, Any]:
    """The principal's query budget on ``dataset_id`` under the team's grant:
    ``{"dataset", "tier", "windows": [...], "privacy"}`` (see :func:`budget_use`; ``privacy``:
    the team's differential-privacy budget, see :func:`privacy_budget`, or None when the tier
    keeps none). Raises Denied (no active
    grant), NotFound or ConfigError as :func:`run_query` would."""
    grant = check_active_grant(ctx.conn, principal, dataset_id)
    _, resolved = resolved_tier(ctx, dataset_id, grant.tier)
    dp_settings = resolved.settings.dp
    return {"dataset": dataset_id, "tier": grant.tier,
            "windows": budget_use(ctx, principal, grant, resolved.settings),
            "privacy": privacy_budget(ctx, grant, dp_settings) if dp_settings else None}


@use_case("query.preview", "dataset:{dataset_id}")
def preview_query(ctx: Context, principal: Principal, dataset_id: str,
                  sql: str) -> dict[str, Any]:
    """Before running ``sql``: in a DP tier, what it will cost and how precise each aggregate
    column will be (95% half-widths), and the budget left. Nothing runs and nothing is
    charged. ``{"dp": False}`` for tiers without a privacy budget. Raises as :func:`run_query`
    does before execution (Denied, NotFound, Rejected)."""
    grant = check_active_grant(ctx.conn, principal, dataset_id)
    release, resolved = resolved_tier(ctx, dataset_id, grant.tier)
    dp_settings = resolved.settings.dp
    if dp_settings is None:
        return {"dp": False}
    plan = executor.prepare(sql, resolved, release).dp_plan
    shown: dict[str, Any] = {"dp": True, "cost_rho": 0.0, "cached": False, "columns": [],
                             "groups": None, "budget": privacy_budget(ctx, grant, dp_settings)}
    if plan is None:
        return shown  # no personal data: exact and free
    cached = dp_ledger.is_answered(ctx.conn, grant.team, grant.dataset_id,
                                   plan.canonical(resolved))
    shown.update(cost_rho=0.0 if cached else plan.rho, cached=cached,
                 columns=dp_noise.expected_half_widths(plan),
                 groups="public" if plan.public_keys is not None else "selected",
                 selection_threshold=plan.selection[1] if plan.selection else None)
    return shown


def _start_run(ctx: Context, principal: Principal, grant: Grant, tier: Tier, query_id: str,
               sql: str, digest: str) -> None:
    with transaction(ctx.conn):
        check_budget(ctx, principal, grant, tier)
        ctx.conn.execute(
            "INSERT INTO query_runs (query_id, user_id, team, dataset_id, tier, sql_text,"
            " sql_hash, status, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?)",
            (query_id, principal.user_id, grant.team, grant.dataset_id, grant.tier,
             sql[:AUDIT_SQL_CHARS], digest, utcnow()))


def _decision(exc: PortalError) -> str:
    if isinstance(exc, Denied | QuotaExceeded | NotFound):
        return "denied"
    return "rejected" if isinstance(exc, UserError) else "failed"


@use_case("query.run", "dataset:{dataset_id}")
def run_query(ctx: Context, principal: Principal, dataset_id: str, sql: str,
              pool: WorkerPool | None = None) -> QueryResult:
    """Run ``sql`` for ``principal`` on ``dataset_id`` under the team's grant.

    Order: active grant (Denied: no_grant, grant_expired, grant_revoked, not_a_member, ...) →
    budget (QuotaExceeded) → preflight and shape (Rejected) → worker on the governed extract
    (Rejected: query_timeout, query_out_of_memory, query_error, ...) → disclosure control.
    One audit event per call whatever the outcome. Unexpected failures raise InternalError
    (no internals in the message)."""
    started = time.perf_counter()
    query_id = executor.new_query_id()
    state: dict[str, Any] = {"tier": None, "team": principal.team, "run": False,
                             "pre": None}
    digest = sql_hash(sql if isinstance(sql, str) else repr(sql))
    try:
        result = _run(ctx, principal, dataset_id, sql, pool, query_id, digest, state)
    except PortalError as exc:
        shown = governed_error(exc, state["tier"]) if isinstance(exc, UserError) \
            else InternalError()
        state["cause"] = exc.code  # staff see the real cause (e.g. invalid_configuration)
        _finish(ctx, principal, dataset_id, sql, digest, query_id, state, started, None, shown)
        raise shown from None
    except Exception as exc:
        state["cause"], state["failure"], shown = describe_failure(exc)  # the cause, for staff
        _finish(ctx, principal, dataset_id, sql, digest, query_id, state, started, None, shown)
        raise shown from exc
    result.duration_ms = round((time.perf_counter() - started) * 1000, 2)
    _finish(ctx, principal, dataset_id, sql, digest, query_id, state, started, result, None)
    return result


_MISSING_COLUMN = (re.compile(r'Referenced column "([^"]{1,200})" not found'),
                   re.compile(r'does not have a column named "([^"]{1,200})"'))
_ENGINE_PREFIX = re.compile(r"^\s*[A-Za-z ]{1,40} Error:\s*")


def governed_error(exc: UserError, tier: str | None) -> UserError:
    """What a member sees of DuckDB's refusal of their query: a column their extract does not
    hold (never released by the tier, or not existing at all — the two are not told apart)
    becomes ``column_not_in_extract``; any other engine refusal keeps its code with only its
    first sentence, without DuckDB's ``Binder Error:``-style prefix, candidate lists or the
    caret picture of the query. Other errors pass unchanged."""
    if not isinstance(exc, Rejected) or exc.code != "query_error":
        return exc
    for pattern in _MISSING_COLUMN:
        found = pattern.search(exc.message)
        if found:
            where = f"the {tier} tier does not release it" if tier else "it is not released"
            return Rejected("column_not_in_extract",
                            f'Column "{found.group(1)}" is not in your extract: {where}, or no '
                            f"table has it. The schema panel lists the columns you can query.")
    first = _ENGINE_PREFIX.sub("", exc.message.split("\n", 1)[0]).strip()
    if first == exc.message.strip():
        return exc
    return Rejected("query_error", f"The query was refused: {first or 'it could not run.'}")


def _run(ctx: Context, principal: Principal, dataset_id: str, sql: str,
         pool: WorkerPool | None, query_id: str, digest: str, state: dict[str, Any]
         ) -> QueryResult:
    grant = check_active_grant(ctx.conn, principal, dataset_id)
    state.update(tier=grant.tier, team=grant.team)
    release, resolved = resolved_tier(ctx, dataset_id, grant.tier)
    _start_run(ctx, principal, grant, resolved.settings, query_id,
               sql if isinstance(sql, str) else "", digest)
    state["run"] = True
    prepared = executor.prepare(sql, resolved, release)
    state["pre"] = prepared.pre
    if prepared.dp_plan is not None:
        return _run_dp(ctx, grant, release, resolved, prepared, pool, query_id, state)
    return executor.execute(ctx.settings, pool or get_pool(ctx.settings), release, resolved,
                            prepared, query_id)


def _run_dp(ctx: Context, grant: Grant, release: Any, resolved: ResolvedTier,
            prepared: executor.Prepared, pool: WorkerPool | None, query_id: str,
            state: dict[str, Any]) -> QueryResult:
    """Charge the team's privacy budget (or replay the identical query's answer), run, and
    keep the noisy answer for replay. Raises QuotaExceeded(``privacy_budget_exhausted``)."""
    plan = prepared.dp_plan
    dp_settings = resolved.settings.dp
    assert plan is not None and dp_settings is not None
    key = plan.canonical(resolved)
    state["dp"] = {"query_key": key, "cost_rho": plan.rho, "delta": plan.delta}
    charged = dp_ledger.charge(
        ctx.conn, team=grant.team, dataset_id=grant.dataset_id,
        release_version=release.version, tier=grant.tier, query_key=key, query_id=query_id,
        rho=plan.rho, delta=plan.delta, budget_rho=dp_settings.budget_rho,
        budget_delta=dp_settings.delta / 2)
    if charged.cached is not None:
        state["dp"].update(cost_rho=0.0, cached=True)
        result = executor.replay(charged.cached, query_id, resolved)
    else:
        try:
            result = executor.execute(ctx.settings, pool or get_pool(ctx.settings), release,
                                      resolved, prepared, query_id)
        except PortalError as exc:
            dp_ledger.record_failure(ctx.conn, grant.team, grant.dataset_id, key, exc.code)
            raise
        except BaseException:
            dp_ledger.record_failure(ctx.conn, grant.team, grant.dataset_id, key,
                                     "internal_error")
            raise
        dp_ledger.record_answer(ctx.conn, grant.team, grant.dataset_id, key,
                                executor.ledger_answer(result))
    result.privacy = dict(result.privacy or {}, **privacy_budget(ctx, grant, dp_settings))
    return result


def privacy_status(ctx: Context, principal: Principal, dataset_id: str) -> dict[str, Any] | None:
    """The team's privacy budget on ``dataset_id`` for display (see :func:`privacy_budget`),
    or None when there is no active grant or its tier keeps no budget. A plain read for page
    reruns: never raises, writes no audit event (like :func:`can_download`)."""
    try:
        grant = check_active_grant(ctx.conn, principal, dataset_id)
        _, resolved = resolved_tier(ctx, dataset_id, grant.tier)
    except PortalError:
        return None
    dp_settings = resolved.settings.dp
    return privacy_budget(ctx, grant, dp_settings) if dp_settings else None


def privacy_budget(ctx: Context, grant: Grant, dp_settings: DpSettings) -> dict[str, Any]:
    """The team's privacy budget on the grant's dataset: spent and left (ρ), the queries left
    at this tier's cost, and the (ε, δ) statement of the whole budget and of what is spent."""
    used = dp_ledger.spent(ctx.conn, grant.team, grant.dataset_id)
    left = max(0.0, dp_settings.budget_rho - used.rho)
    return {
        "budget_rho": dp_settings.budget_rho, "spent_rho": round(used.rho, 12),
        "left_rho": round(left, 12), "rho_per_query": dp_settings.rho_per_query,
        "queries_left": int((left + 1e-12) // dp_settings.rho_per_query),
        "queries_charged": used.queries, "delta": dp_settings.delta,
        "epsilon_budget": dp_ledger.epsilon(dp_settings.budget_rho, dp_settings.delta / 2),
        "epsilon_spent": dp_ledger.epsilon(used.rho, dp_settings.delta / 2),
    }


def _finish(ctx: Context, principal: Principal, dataset_id: str, sql: Any, digest: str,
            query_id: str, state: dict[str, Any], started: float,
            result: QueryResult | None, error: PortalError | None) -> None:
    duration = round((time.perf_counter() - started) * 1000, 2)
    pre = state.get("pre")
    text = sql if isinstance(sql, str) else ""
    details = {
        "query_id": query_id, "dataset": dataset_id, "tier": state.get("tier"),
        "sql": text[:AUDIT_SQL_CHARS], "sql_bytes": len(text.encode("utf-8", "replace")),
        "sql_hash": digest, "tables": list(pre.tables) if pre else [],
        "functions": list(pre.functions) if pre else [],
        "table_functions": list(pre.table_functions) if pre else [],
        "rows_returned": result.row_count if result else 0,
        "rows_suppressed": result.suppressed if result else 0,
        "cells_suppressed": result.suppressed_cells if result else 0,
        "truncated": bool(result.truncated) if result else False, "duration_ms": duration,
        **({"privacy": state["dp"]} if state.get("dp") else {}),
        **state.get("failure", {}),
    }
    decision = "allowed" if error is None else _decision(error)
    with transaction(ctx.conn):
        if state.get("run"):
            ctx.conn.execute(
                "UPDATE query_runs SET status = ?, code = ?, rows_returned = ?, suppressed = ?,"
                " truncated = ?, duration_ms = ? WHERE query_id = ?",
                ("allowed" if error is None else ("failed" if decision == "failed"
                                                   else "rejected"),
                 error.code if error else None, details["rows_returned"],
                 details["rows_suppressed"], int(details["truncated"]), duration, query_id))
        audit.record(ctx.conn, actor=principal.actor, team=state.get("team"), action=ACTION,
                     target=f"dataset:{dataset_id}", decision=decision,
                     reason=state.get("cause") or (error.code if error else None),
                     details=details)


# A query runs at most its tier's time limit (an access policy allows at most an hour) plus the
# worker's hard-kill grace: a row still 'running' long after that was left by a process that died.
ABANDONED_AFTER = timedelta(hours=1, minutes=10)


def close_abandoned_runs(ctx: Context, now: datetime | None = None) -> int:
    """Close the query_runs rows that a process which died mid-query left ``running`` (older
    than :data:`ABANDONED_AFTER`): each becomes ``failed`` with code ``query_abandoned`` and
    gets the one audit event its attempt could not write, in the same transaction. Returns how
    many were closed. The periodic sweep of the job workers calls this."""
    cutoff = _iso((now or datetime.now(UTC)) - ABANDONED_AFTER)
    with transaction(ctx.conn):
        rows = ctx.conn.execute(
            "SELECT r.query_id, r.team, r.dataset_id, r.tier, r.sql_text, r.sql_hash,"
            " r.started_at, u.email FROM query_runs r JOIN users u ON u.id = r.user_id"
            " WHERE r.status = 'running' AND r.started_at < ? ORDER BY r.id", (cutoff,)
        ).fetchall()
        for row in rows:
            ctx.conn.execute("UPDATE query_runs SET status = 'failed', code = 'query_abandoned'"
                             " WHERE query_id = ? AND status = 'running'", (row["query_id"],))
            audit.record(ctx.conn, actor=row["email"], team=row["team"], action=ACTION,
                         target=f"dataset:{row['dataset_id']}", decision="failed",
                         reason="query_abandoned",
                         details={"query_id": row["query_id"], "dataset": row["dataset_id"],
                                  "tier": row["tier"], "sql": row["sql_text"],
                                  "sql_hash": row["sql_hash"], "started_at": row["started_at"],
                                  "rows_returned": 0})
    return len(rows)


# --- history and saved queries ------------------------------------------------------------
@use_case("query.history")
def query_history(ctx: Context, principal: Principal, limit: int = 50) -> list[dict[str, Any]]:
    """The principal's own recent queries, newest first (no result values are ever stored)."""
    rows = ctx.conn.execute(
        "SELECT query_id, dataset_id, tier, sql_text, status, code, rows_returned, suppressed,"
        " truncated, duration_ms, started_at FROM query_runs WHERE user_id = ?"
        " ORDER BY id DESC LIMIT ?", (principal.user_id, max(1, min(int(limit), 1000)))
    ).fetchall()
    return [dict(r) | {"truncated": bool(r["truncated"])} for r in rows]


@use_case("query.save", "dataset:{dataset_id}")
def save_query(ctx: Context, principal: Principal, dataset_id: str, name: str,
               sql: str, shared: bool = False) -> int:
    """Save (or replace) a named query for the principal; ``shared`` lets the principal's team
    see and load it. Raises InvalidInput."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("invalid_name", "A saved query needs a name of 1 to 100 characters.")
    if not sql or len(sql.encode("utf-8")) > 64 * 1024:
        raise InvalidInput("invalid_sql", "A saved query must be 1 byte to 64 KB of SQL.")
    if principal.user_id is None:
        raise Denied("not_signed_in", "Sign in to save queries.")
    with transaction(ctx.conn):
        ctx.conn.execute(
            "INSERT INTO saved_queries (user_id, dataset_id, name, sql_text, created_at, shared)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(user_id, name) DO UPDATE SET"
            " dataset_id = excluded.dataset_id, sql_text = excluded.sql_text,"
            " shared = excluded.shared",
            (principal.user_id, dataset_id, name, sql, utcnow(), int(bool(shared))))
        row = ctx.conn.execute("SELECT id FROM saved_queries WHERE user_id = ? AND name = ?",
                               (principal.user_id, name)).fetchone()
        if shared:
            audit.record(ctx.conn, actor=principal.actor, team=principal.team,
                         action="query.saved.share", target=f"saved_query:{row['id']}",
                         decision="done", details={"name": name, "shared": True})
    return int(row["id"])


_SAVED_COLUMNS = ("SELECT s.id, s.dataset_id, s.name, s.sql_text, s.created_at, s.shared,"
                  " u.email AS owner, s.user_id = ? AS mine FROM saved_queries s"
                  " JOIN users u ON u.id = s.user_id")


@use_case("query.saved.list")
def list_saved_queries(ctx: Context, principal: Principal,
                       dataset_id: str | None = None) -> list[dict[str, Any]]:
    """The principal's own saved queries and those their team's current members shared
    (optionally for one dataset), by name. Each has ``owner`` (email), ``shared`` and ``mine``."""
    sql = (_SAVED_COLUMNS + " WHERE (s.user_id = ? OR (s.shared = 1 AND s.user_id IN"
           " (SELECT m.user_id FROM memberships m JOIN teams t ON t.id = m.team_id"
           " WHERE t.slug = ?)))")
    params: list[Any] = [principal.user_id, principal.user_id, principal.team or ""]
    if dataset_id:
        sql += " AND s.dataset_id = ?"
        params.append(dataset_id)
    rows = ctx.conn.execute(sql + " ORDER BY s.name, u.email", params).fetchall()
    return [dict(r) | {"shared": bool(r["shared"]), "mine": bool(r["mine"])} for r in rows]


@use_case("query.saved.share", "saved_query:{query_id}")
def share_saved_query(ctx: Context, principal: Principal, query_id: int,
                      shared: bool = True) -> None:
    """Share one of the principal's own saved queries with their team, or stop sharing it.
    One audit event. Raises NotFound (not the principal's own)."""
    with transaction(ctx.conn):
        cur = ctx.conn.execute("UPDATE saved_queries SET shared = ? WHERE id = ? AND user_id = ?",
                               (int(bool(shared)), int(query_id), principal.user_id))
        if cur.rowcount == 0:
            raise NotFound("unknown_saved_query", "No such saved query of yours.")
        audit.record(ctx.conn, actor=principal.actor, team=principal.team,
                     action="query.saved.share", target=f"saved_query:{int(query_id)}",
                     decision="done", details={"shared": bool(shared)})


@use_case("query.saved.delete", "saved_query:{query_id}")
def delete_saved_query(ctx: Context, principal: Principal, query_id: int) -> None:
    """Delete one of the principal's own saved queries (a teammate's shared one is refused
    with NotFound, like a missing one)."""
    with transaction(ctx.conn):
        cur = ctx.conn.execute("DELETE FROM saved_queries WHERE id = ? AND user_id = ?",
                               (int(query_id), principal.user_id))
    if cur.rowcount == 0:
        raise NotFound("unknown_saved_query", "No such saved query.")


# --- schema, download, extracts ----------------------------------------------------------
@use_case("query.schema", "dataset:{dataset_id}")
def schema_for(ctx: Context, principal: Principal,
               dataset_id: str) -> dict[str, list[tuple[str, str]]]:
    """Exactly the tables and (column, type) pairs the principal's extract holds.
    Raises Denied (no active grant) or NotFound."""
    grant = check_active_grant(ctx.conn, principal, dataset_id)
    return extract_schema(extract_for(ctx, dataset_id, grant.tier))


def can_download(ctx: Context, principal: Principal, dataset_id: str,
                 result: QueryResult | None = None) -> bool:
    """Whether the tier lets this principal download ``result`` now
    (:func:`portal.authz.check_download`): for showing or hiding the download button."""
    return authz.can_download(ctx.conn, ctx.settings, principal, dataset_id, result)


@use_case("query.download", "dataset:{dataset_id}")
def download_result(ctx: Context, principal: Principal, dataset_id: str,
                    result: QueryResult | None, fmt: str = "csv") -> QueryResult:
    """A result leaving the platform (the Download button, at the moment it is clicked): the
    grant and the tier's ``download`` rule are re-read now (:func:`portal.authz.check_download`)
    — a grant revoked or expired since the result was shown refuses the download — and the
    download is audited (who, which query, how many rows, which format — ``csv`` or
    ``parquet``; never the values). Returns the result
    to export. Raises Denied (grant codes, ``download_not_allowed``, ``result_not_yours``),
    NotFound(``no_result``)."""
    if result is None:
        raise NotFound("no_result", "There is no result to download; run the query first.")
    authz.check_download(ctx.conn, ctx.settings, principal, dataset_id, result)
    audit.record(ctx.conn, actor=principal.actor, team=principal.team, action="query.download",
                 target=f"dataset:{dataset_id}", decision="done",
                 details={"query_id": str(result.query_id)[:64], "rows": len(result.rows),
                          "tier": result.tier,
                          "format": "parquet" if fmt == "parquet" else "csv"})
    return result


def extract_for(ctx: Context, dataset_id: str, tier: str) -> Path:
    """The governed extract file for ``dataset_id`` at ``tier`` (built if missing) — for staff
    views such as ``portal access list``. Raises NotFound or ConfigError."""
    release, resolved = resolved_tier(ctx, dataset_id, tier)
    return build_extract(ctx.settings, release, resolved)


@use_case("extracts.prune")
def prune_extracts(ctx: Context, principal: Principal) -> list[str]:
    """Staff: delete extract files that no current (release, tier) resolves to any more (left by
    a policy or release change). Returns the removed file names; one audit event. Open handles
    in workers keep working (the file is unlinked, not truncated)."""
    from portal.authz import check_staff
    from portal.query.extracts import extract_path
    from portal.services.policies import current_releases, policies

    check_staff(ctx.conn, principal)
    keep = set()
    releases = current_releases(ctx)
    for dataset_id, policy in policies(ctx).items():
        for tier in policy.tiers if dataset_id in releases else ():
            _, resolved = resolved_tier(ctx, dataset_id, tier)
            keep.add(extract_path(ctx.settings, resolved).name)
    removed = []
    for path in sorted(ctx.settings.extracts_dir.glob("*.duckdb")):
        if path.name not in keep:
            path.unlink(missing_ok=True)
            removed.append(path.name)
    stale_before = time.time() - 3600  # builds interrupted more than an hour ago
    for pattern in (".*.tmp", ".*.tmp.wal"):
        for path in sorted(ctx.settings.extracts_dir.glob(pattern)):
            if path.stat().st_mtime < stale_before:
                path.unlink(missing_ok=True)
                removed.append(path.name)
    audit.record(ctx.conn, actor=principal.actor, action="extracts.prune", decision="done",
                 details={"removed": removed, "kept": sorted(keep)})
    return removed
