"""Append-only audit log, chained with a key the store does not hold.

Every event stores the MAC of the one before it: HMAC-SHA256, under the installation's audit key
(``Settings.secret``, kept in ``PORTAL_SECRETS_DIR``, never in the store), over its position and
content. An edited, inserted or deleted event breaks the chain, and without the key nobody can
recompute it. Signed checkpoints written outside the store (``portal.audit_checkpoints``) anchor
the head, so removing the newest events is detected too. Events written before the key existed
(chain 1: plain SHA-256) stay verifiable; the first keyed event seals them.

Verification is incremental on pages (:func:`verify_new` checks only events after the last
verified one, remembered in the store) and complete on demand (:func:`verify`).

Events hold references, SQL text, decisions, reasons and counts — never result values or data
from a release. See docs/decisions/0005-keyed-audit-chain.md and docs/security-properties.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from portal.canonical import canonical_json
from portal.config import Settings
from portal.store.db import transaction, utcnow

GENESIS = "0" * 64
DECISIONS = ("allowed", "denied", "rejected", "failed", "done")
LEGACY_CHAIN, KEYED_CHAIN = 1, 2
KEY_NAME = "audit-chain-hmac"
MAX_LIST = 100_000
_FIELDS = ("at", "actor", "team", "action", "target", "decision", "reason", "details")
_recording: ContextVar[tuple[list[str], ...]] = ContextVar("portal_audit_recording",
                                                            default=())


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
    chain: int = KEYED_CHAIN

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in ("id", *_FIELDS, "prev_hash", "hash", "chain")}


def settings_of(conn: sqlite3.Connection) -> Settings:
    """The installation a store connection belongs to. Raises RuntimeError for a connection
    opened without settings (``portal.store.db.connect(path, settings)``)."""
    settings = getattr(conn, "settings", None)
    if settings is None:
        raise RuntimeError("audit events need the installation's key: open the store with "
                           "open_store(settings) or connect(path, settings)")
    return settings


def chain_key(conn: sqlite3.Connection) -> bytes:
    """The installation's audit key (created on first use; cached on the connection)."""
    key = getattr(conn, "_audit_key", None)
    if key is None:
        key = settings_of(conn).secret(KEY_NAME, 32)
        conn._audit_key = key  # type: ignore[attr-defined]
    return key


def _text(value: str | None) -> str | None:
    """Text safe to store and hash: lone surrogates (undecodable bytes) shown escaped."""
    if value is None:
        return None
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, Mapping):
        return {_text(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _canonical(details: Mapping[str, Any]) -> str:
    return canonical_json(_clean(details), allow_nan=True, default=lambda v: _text(str(v)))


def _event_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """Chain 1 (before the key): SHA-256 of the previous hash and the fields."""
    payload = json.dumps([prev_hash, *[fields[f] for f in _FIELDS]], ensure_ascii=False,
                         separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def event_mac(key: bytes, event_id: int, prev_mac: str, fields: Mapping[str, Any]) -> str:
    """Chain 2: HMAC-SHA256 under the installation key of the event's id, the previous MAC
    and every field, so an event can be neither changed nor moved."""
    payload = json.dumps([KEYED_CHAIN, event_id, prev_mac, *[fields[f] for f in _FIELDS]],
                         ensure_ascii=False, separators=(",", ":"))
    return hmac.new(key, payload.encode("utf-8"), hashlib.sha256).hexdigest()


def record(conn: sqlite3.Connection, *, actor: str, action: str, decision: str,
           team: str | None = None, target: str | None = None, reason: str | None = None,
           details: Mapping[str, Any] | None = None) -> int:
    """Append one event and return its id.

    Joins the caller's transaction when there is one (so a write and its audit event commit
    together); otherwise runs in its own. The head is read and the event inserted in the same
    transaction, with the next id given explicitly, so two writers can never fork the chain.
    ``decision`` is one of :data:`DECISIONS` (else ValueError); RuntimeError for a connection
    without settings."""
    if decision not in DECISIONS:
        raise ValueError(f"unknown audit decision {decision!r}")
    fields = {
        "at": utcnow(), "actor": _text(actor), "team": _text(team), "action": _text(action),
        "target": _text(target), "decision": decision, "reason": _text(reason),
        "details": _canonical(details or {}),
    }
    key = chain_key(conn)
    scope = nullcontext(conn) if conn.in_transaction else transaction(conn)
    with scope:
        row = conn.execute(
            "SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1").fetchone()
        event_id, prev = (int(row["id"]) + 1, row["hash"]) if row else (1, GENESIS)
        mac = event_mac(key, event_id, prev, fields)
        conn.execute(
            "INSERT INTO audit_events (id, at, actor, team, action, target, decision, reason,"
            " details, prev_hash, hash, chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event_id, *[fields[f] for f in _FIELDS], prev, mac, KEYED_CHAIN),
        )
    for seen in _recording.get():
        seen.append(mac)
    return event_id


@contextmanager
def watch() -> Iterator[list[str]]:
    """Collect the MACs of the events recorded in this context (this thread or task), nested
    watches included; see :func:`any_stored` and ``portal.services.attempts``."""
    seen: list[str] = []
    token = _recording.set((*_recording.get(), seen))
    try:
        yield seen
    finally:
        _recording.reset(token)


def any_stored(conn: sqlite3.Connection, macs: Sequence[str]) -> bool:
    """Whether any of these events is in the store (committed, or in the open transaction):
    an event whose transaction rolled back is not."""
    if not macs:
        return False
    marks = ", ".join("?" for _ in macs)
    return conn.execute(f"SELECT 1 FROM audit_events WHERE hash IN ({marks}) LIMIT 1",
                        list(macs)).fetchone() is not None


def _row_to_event(row: sqlite3.Row) -> AuditEvent:
    return AuditEvent(
        id=row["id"], at=row["at"], actor=row["actor"], team=row["team"], action=row["action"],
        target=row["target"], decision=row["decision"], reason=row["reason"],
        details=json.loads(row["details"]), prev_hash=row["prev_hash"], hash=row["hash"],
        chain=row["chain"],
    )


def list_events(conn: sqlite3.Connection, *, actor: str | None = None, team: str | None = None,
                action: str | None = None, decision: str | None = None,
                target_prefix: str | None = None, since: str | None = None,
                until: str | None = None, limit: int = 1000) -> list[AuditEvent]:
    """Events newest first, filtered; at most ``limit`` (1 to :data:`MAX_LIST`). Times are
    ISO-8601 UTC strings compared as text."""
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
        f"SELECT * FROM audit_events {where} ORDER BY id DESC LIMIT ?",
        (*params, max(1, min(int(limit), MAX_LIST))),
    ).fetchall()
    return [_row_to_event(r) for r in rows]


FILTER_COLUMNS = ("actor", "team", "action")


def filter_values(conn: sqlite3.Connection) -> dict[str, Any]:
    """What the log holds, for filter pickers: the distinct actors, teams and actions (sorted)
    and the first and last event times (``first``/``last``, None when empty). Each column has
    an index, so this reads indexes, not events."""
    found: dict[str, Any] = {
        column: [r[0] for r in conn.execute(
            f"SELECT DISTINCT {column} FROM audit_events WHERE {column} IS NOT NULL "
            f"ORDER BY {column}").fetchall()]
        for column in FILTER_COLUMNS}
    row = conn.execute("SELECT min(at), max(at) FROM audit_events").fetchone()
    found["first"], found["last"] = row[0], row[1]
    return found


# --- verification -----------------------------------------------------------------------------
@dataclass(frozen=True)
class VerifyResult:
    """The outcome of a verification. ``checked``: events whose MAC was recomputed this time;
    ``events``: events in the chain up to ``head_id``; ``keyed_from``: the first keyed event;
    ``checkpoints``: signed checkpoints the store was compared with; ``notes``: what the result
    does not cover (no checkpoint yet, events from before the key)."""

    ok: bool
    checked: int
    first_bad_id: int | None = None
    problem: str | None = None
    head_id: int = 0
    head_mac: str = GENESIS
    events: int = 0
    keyed_from: int | None = None
    checkpoints: int = 0
    full: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "first_bad_id": self.first_bad_id,
                "problem": self.problem, "head_id": self.head_id, "head_mac": self.head_mac,
                "events": self.events, "keyed_from": self.keyed_from,
                "checkpoints": self.checkpoints, "full": self.full, "notes": list(self.notes)}


class _Walk:
    """Follows the chain row by row; ``check`` names what is wrong with the next row."""

    def __init__(self, conn: sqlite3.Connection, prev: str = GENESIS,
                 last_id: int | None = None, keyed_from: int | None = None) -> None:
        self.key, self.prev, self.last_id, self.keyed_from = chain_key(conn), prev, last_id, \
            keyed_from
        self.keyed_since = _keyed_since(conn)
        self.checked = 0

    def check(self, row: sqlite3.Row) -> str | None:
        event_id = row["id"]
        if self.last_id is not None and event_id != self.last_id + 1:
            return f"events before id {event_id} are missing"
        if row["prev_hash"] != self.prev:
            return f"event {event_id} does not follow the event before it"
        fields = {f: row[f] for f in _FIELDS}
        if row["chain"] == KEYED_CHAIN:
            expected = event_mac(self.key, event_id, self.prev, fields)
            self.keyed_from = self.keyed_from or event_id
        elif row["chain"] == LEGACY_CHAIN and self.keyed_since and row["at"] >= self.keyed_since:
            return f"event {event_id} is unkeyed but was written after the audit key was " \
                   f"introduced ({self.keyed_since})"
        elif row["chain"] == LEGACY_CHAIN and self.keyed_from is None:
            expected = _event_hash(self.prev, fields)
        elif row["chain"] == LEGACY_CHAIN:
            return f"event {event_id} is unkeyed although the chain is keyed since " \
                   f"event {self.keyed_from}"
        else:
            return f"event {event_id} has an unknown chain version"
        if not hmac.compare_digest(expected, row["hash"]):
            return f"event {event_id} was altered (its MAC does not match)"
        self.prev, self.last_id = row["hash"], event_id
        self.checked += 1
        return None


def _keyed_since(conn: sqlite3.Connection) -> str | None:
    """When this store started the keyed chain (migration 0008): no unkeyed event is newer."""
    row = conn.execute("SELECT applied_at FROM schema_migrations WHERE number = 8").fetchone()
    return row["applied_at"] if row else None


def _walk(conn: sqlite3.Connection, walk: _Walk, after_id: int) -> tuple[int | None, str | None]:
    for row in conn.execute("SELECT * FROM audit_events WHERE id > ? ORDER BY id", (after_id,)):
        problem = walk.check(row)
        if problem:
            return row["id"], problem
    return None, None


def _verified_state(conn: sqlite3.Connection) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM audit_verified WHERE id = 1").fetchone()


def _state_problem(conn: sqlite3.Connection, state: sqlite3.Row | None,
                   key: bytes | None) -> str | None:
    """Is the last event verified earlier still there, unchanged? (``key``: also recompute its
    MAC.)"""
    if state is None or state["last_id"] == 0:
        return None
    row = conn.execute("SELECT * FROM audit_events WHERE id = ?", (state["last_id"],)).fetchone()
    if row is None or row["hash"] != state["last_mac"]:
        return (f"event {state['last_id']}, verified at {state['verified_at']}, has been removed "
                f"or replaced")
    if key is not None and row["chain"] == KEYED_CHAIN:
        fields = {f: row[f] for f in _FIELDS}
        if not hmac.compare_digest(event_mac(key, row["id"], row["prev_hash"], fields),
                                   row["hash"]):
            return f"event {row['id']} was altered (its MAC does not match)"
    return None


def _remember(conn: sqlite3.Connection, result: VerifyResult) -> None:
    scope = nullcontext(conn) if conn.in_transaction else transaction(conn)
    with scope:
        conn.execute(
            "INSERT INTO audit_verified (id, last_id, last_mac, events, verified_at)"
            " VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET last_id = excluded.last_id,"
            " last_mac = excluded.last_mac, events = excluded.events,"
            " verified_at = excluded.verified_at WHERE audit_verified.last_id <= excluded.last_id",
            (result.head_id, result.head_mac, result.events, utcnow()))


def _finish(conn: sqlite3.Connection, result: VerifyResult, extra: Sequence[Path],
            thorough: bool, remember: bool = True) -> VerifyResult:
    """Compare the verified chain with the signed checkpoints; remember it when it holds."""
    from portal import audit_checkpoints

    settings = settings_of(conn)
    problems, checked = audit_checkpoints.check_all(conn, settings, extra, thorough)
    notes = list(result.notes) + audit_checkpoints.notes(settings, checked)
    if result.events and result.keyed_from != 1:
        unkeyed = result.events if result.keyed_from is None else result.keyed_from - 1
        notes.append(f"the first {unkeyed} event(s) predate the audit key (chain 1, plain "
                     f"SHA-256); a keyed event after them seals them")
    result = replace(result, checkpoints=checked, notes=tuple(notes))
    if problems:
        return replace(result, ok=False, problem=problems[0])
    if remember:
        _remember(conn, result)
    return result


def verify(conn: sqlite3.Connection, checkpoints: Sequence[Path] = ()) -> VerifyResult:
    """Walk the whole chain from the start, recomputing every MAC; then compare it with every
    checkpoint in the anchor folder and ``checkpoints`` (files given by the caller). Reports the
    first event that was edited, inserted, moved or follows a deleted one, and a head older
    than a checkpoint (truncation). Remembers the verified head for :func:`verify_new`."""
    walk = _Walk(conn)
    bad_id, problem = _walk(conn, walk, 0)
    if problem is None:
        problem = _state_problem(conn, _verified_state(conn), None)
    result = VerifyResult(ok=problem is None, checked=walk.checked, first_bad_id=bad_id,
                          problem=problem, head_id=walk.last_id or 0, head_mac=walk.prev,
                          events=walk.checked, keyed_from=walk.keyed_from, full=True)
    if not result.ok:
        return result
    return _finish(conn, result, checkpoints, thorough=True)


def verify_new(conn: sqlite3.Connection) -> VerifyResult:
    """Verify only the events after the last verified one (the whole chain the first time):
    the last verified event must still be there, unchanged, and every later event must follow
    it with a valid MAC; the newest checkpoint must still match. For pages; a full
    :func:`verify` also catches edits inside the verified part."""
    key = chain_key(conn)
    state = _verified_state(conn)
    if state is None or state["last_id"] == 0:
        return verify(conn)
    problem = _state_problem(conn, state, key)
    if problem:
        return VerifyResult(ok=False, checked=0, first_bad_id=state["last_id"], problem=problem,
                            full=False)
    keyed = conn.execute("SELECT min(id) FROM audit_events WHERE chain = ?",
                         (KEYED_CHAIN,)).fetchone()[0]
    walk = _Walk(conn, prev=state["last_mac"], last_id=state["last_id"],
                 keyed_from=keyed if keyed is not None and keyed <= state["last_id"] else None)
    bad_id, problem = _walk(conn, walk, state["last_id"])
    result = VerifyResult(ok=problem is None, checked=walk.checked, first_bad_id=bad_id,
                          problem=problem, head_id=walk.last_id or 0, head_mac=walk.prev,
                          events=state["events"] + walk.checked, keyed_from=walk.keyed_from,
                          full=False)
    if not result.ok:
        return result
    return _finish(conn, result, (), thorough=False, remember=walk.checked > 0)
