"""Append-only, hash-chained audit log.

Every event stores the hash of the one before it, so an edited, inserted or deleted event breaks
the chain and :func:`verify` names the first event where it breaks. Events hold references, SQL
text, decisions, reasons and counts — never result values or data from a release.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from portal.store.db import transaction, utcnow

GENESIS = "0" * 64
DECISIONS = ("allowed", "denied", "rejected", "failed", "done")
_FIELDS = ("at", "actor", "team", "action", "target", "decision", "reason", "details")


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: str
    actor: str
    team: str | None
    action: str
    target: str | None
    decision: str
    reason: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in ("id", *_FIELDS, "prev_hash", "hash")}


def _canonical(details: Mapping[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def _event_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    payload = json.dumps([prev_hash, *[fields[f] for f in _FIELDS]], ensure_ascii=False,
                         separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def record(conn: sqlite3.Connection, *, actor: str, action: str, decision: str,
           team: str | None = None, target: str | None = None, reason: str | None = None,
           details: Mapping[str, Any] | None = None) -> int:
    """Append one event and return its id.

    Joins the caller's transaction when there is one (so a write and its audit event commit
    together); otherwise runs in its own. ``decision`` is one of :data:`DECISIONS`."""
    if decision not in DECISIONS:
        raise ValueError(f"unknown audit decision {decision!r}")
    fields = {
        "at": utcnow(), "actor": actor, "team": team, "action": action, "target": target,
        "decision": decision, "reason": reason, "details": _canonical(details or {}),
    }
    scope = nullcontext(conn) if conn.in_transaction else transaction(conn)
    with scope:
        row = conn.execute(
            "SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1").fetchone()
        prev = row["hash"] if row else GENESIS
        digest = _event_hash(prev, fields)
        # The id is the head's plus one, chosen under the write lock: ids stay gapless on both
        # engines (a PostgreSQL sequence would skip numbers after a rollback).
        cur = conn.execute(
            "INSERT INTO audit_events (id, at, actor, team, action, target, decision, reason,"
            " details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            ((int(row["id"]) + 1) if row else 1, *[fields[f] for f in _FIELDS], prev, digest),
        )
        return int(cur.fetchone()[0])


def _row_to_event(row: sqlite3.Row) -> AuditEvent:
    return AuditEvent(
        id=row["id"], at=row["at"], actor=row["actor"], team=row["team"], action=row["action"],
        target=row["target"], decision=row["decision"], reason=row["reason"],
        details=json.loads(row["details"]), prev_hash=row["prev_hash"], hash=row["hash"],
    )


def list_events(conn: sqlite3.Connection, *, actor: str | None = None, team: str | None = None,
                action: str | None = None, decision: str | None = None,
                target_prefix: str | None = None, since: str | None = None,
                until: str | None = None, limit: int = 1000) -> list[AuditEvent]:
    """Events newest first, filtered. Times are ISO-8601 UTC strings compared as text."""
    clauses, params = [], []
    for column, value in (("actor", actor), ("team", team), ("action", action),
                          ("decision", decision)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if target_prefix:
        clauses.append("target LIKE ? ESCAPE '\\'")
        escaped = target_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params.append(escaped + "%")
    if since:
        clauses.append("at >= ?")
        params.append(since)
    if until:
        clauses.append("at <= ?")
        params.append(until)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(
        f"SELECT * FROM audit_events {where} ORDER BY id DESC LIMIT ?", (*params, int(limit))
    ).fetchall()
    return [_row_to_event(r) for r in rows]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_id: int | None = None
    problem: str | None = None


def _iter_rows(conn: sqlite3.Connection) -> Iterator[sqlite3.Row]:
    yield from conn.execute("SELECT * FROM audit_events ORDER BY id")


def verify(conn: sqlite3.Connection) -> VerifyResult:
    """Walk the chain from the start; report the first event that was edited, inserted or
    follows a deleted one."""
    prev = GENESIS
    checked = 0
    expected_id = None
    for row in _iter_rows(conn):
        if expected_id is not None and row["id"] != expected_id:
            return VerifyResult(False, checked, row["id"],
                                f"events before id {row['id']} are missing")
        if row["prev_hash"] != prev:
            return VerifyResult(False, checked, row["id"],
                                f"event {row['id']} does not follow the event before it")
        fields = {f: row[f] for f in _FIELDS}
        if _event_hash(prev, fields) != row["hash"]:
            return VerifyResult(False, checked, row["id"], f"event {row['id']} was altered")
        prev = row["hash"]
        expected_id = row["id"] + 1
        checked += 1
    return VerifyResult(True, checked)
