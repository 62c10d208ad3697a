"""Grants: which team may use which dataset, at which tier, until when — and the check that
every data access goes through.

Invariants:

- At most one ``active`` grant per team and dataset (a unique index); a new grant supersedes the
  older one, which becomes ``revoked`` with the reason "superseded by grant N".
- Expiry is enforced at check time: an ``active`` grant past its ``expires_at`` is denied as
  expired, and is recorded as ``expired`` (with its audit event) as soon as a write is possible.
- Every status change goes through :func:`portal.access.states.check_transition` and writes one
  audit event in the same transaction.

:func:`check_active_grant` does not write an audit event for a denial: its callers (the query
engine, the services) record one event per attempt, with the denial code.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from portal import audit
from portal.access.states import check_transition
from portal.authz import check_member
from portal.errors import Denied, NotFound
from portal.identity import Principal
from portal.store.db import transaction

log = logging.getLogger(__name__)

EXPIRING_SOON_DAYS = 14
BUCKETS = ("active", "expiring_soon", "expired", "revoked")

_SELECT = (
    "SELECT g.*, t.slug AS team_slug, u.email AS approved_by_email FROM grants g"
    " JOIN teams t ON t.id = g.team_id JOIN users u ON u.id = g.approved_by"
)


def now_utc(now: datetime | None = None) -> datetime:
    """``now`` (made timezone-aware, UTC) or the current time, to the second."""
    value = now or datetime.now(UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def to_text(moment: datetime) -> str:
    """A datetime as the store's ISO-8601 UTC text (``2026-10-01T00:00:00Z``)."""
    return now_utc(moment).isoformat().replace("+00:00", "Z")


def from_text(text: str) -> datetime:
    """The store's ISO-8601 text back to an aware datetime."""
    return now_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


@dataclass(frozen=True)
class Grant:
    """A grant as the rest of the portal sees it. Times are ISO-8601 UTC text."""

    id: int
    team: str  # team slug
    team_id: int
    dataset_id: str
    tier: str
    purpose: str
    approved_by: str  # e-mail of the approving staff member
    starts_at: str
    expires_at: str
    status: str  # as stored: active, expired, revoked
    revoked_reason: str | None = None
    conditions: str = ""
    request_id: int | None = None
    revoked_at: str | None = None
    superseded_by: int | None = None

    def is_past_expiry(self, now: datetime | None = None) -> bool:
        return from_text(self.expires_at) <= now_utc(now)

    def effective_status(self, now: datetime | None = None) -> str:
        """The stored status, except that an active grant past its expiry counts as expired."""
        if self.status == "active" and self.is_past_expiry(now):
            return "expired"
        return self.status

    def days_left(self, now: datetime | None = None) -> int:
        """Days until expiry, counting a started day as a whole one (a 30-day grant shows 30
        on its first day); 0 once it is no longer active."""
        if self.effective_status(now) != "active":
            return 0
        seconds = (from_text(self.expires_at) - now_utc(now)).total_seconds()
        return max(0, math.ceil(seconds / 86400))

    def bucket(self, now: datetime | None = None) -> str:
        """One of :data:`BUCKETS` — how the Grants page groups it."""
        status = self.effective_status(now)
        if status == "active" and self.days_left(now) <= EXPIRING_SOON_DAYS:
            return "expiring_soon"
        return status

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        data = asdict(self)
        data["effective_status"] = self.effective_status(now)
        data["days_left"] = self.days_left(now)
        data["bucket"] = self.bucket(now)
        return data


def _grant(row: sqlite3.Row) -> Grant:
    return Grant(
        id=row["id"], team=row["team_slug"], team_id=row["team_id"],
        dataset_id=row["dataset_id"], tier=row["tier"], purpose=row["purpose"],
        approved_by=row["approved_by_email"], starts_at=row["starts_at"],
        expires_at=row["expires_at"], status=row["status"],
        revoked_reason=row["revoked_reason"], conditions=row["conditions"],
        request_id=row["request_id"], revoked_at=row["revoked_at"],
        superseded_by=row["superseded_by"],
    )


# --- the check ------------------------------------------------------------------------------
def latest_grant(conn: sqlite3.Connection, team_id: int, dataset_id: str) -> Grant | None:
    """The team's active grant for the dataset, else its most recent one, else None."""
    row = conn.execute(
        f"{_SELECT} WHERE g.team_id = ? AND g.dataset_id = ?"
        " ORDER BY (g.status = 'active') DESC, g.id DESC LIMIT 1",
        (team_id, dataset_id),
    ).fetchone()
    return _grant(row) if row else None


def check_active_grant(conn: sqlite3.Connection, principal: Principal, dataset_id: str,
                       now: datetime | None = None) -> Grant:
    """The principal's team's active, unexpired grant for ``dataset_id``.

    Membership, user and team status are re-read from the store (never trusted from the
    principal). Raises Denied with code ``not_a_member`` (staff, unaffiliated, invited or removed
    users), ``user_suspended``, ``team_suspended``, ``no_grant``, ``grant_expired`` or
    ``grant_revoked`` (message includes the staff's reason). An active grant found past its
    expiry is marked expired (audited) before the denial is raised."""
    moment = now_utc(now)
    _, team = check_member(conn, principal)
    grant = latest_grant(conn, team["id"], dataset_id)
    if grant is None:
        raise Denied("no_grant", f"Your team has no grant for {dataset_id}. Request access "
                                 f"from the catalog.")
    if grant.status == "active" and not grant.is_past_expiry(moment):
        return grant
    if grant.status == "active":
        _expire_lazily(conn, grant, moment)
    if grant.status == "revoked":
        reason = grant.revoked_reason or "no reason recorded"
        raise Denied("grant_revoked", f"Your team's access to {dataset_id} was revoked on "
                                      f"{(grant.revoked_at or '')[:10]}: {reason}")
    raise Denied("grant_expired", f"Your team's access to {dataset_id} expired on "
                                  f"{grant.expires_at[:10]}")


def can_use_dataset(conn: sqlite3.Connection, principal: Principal, dataset_id: str,
                    now: datetime | None = None) -> bool:
    """True when :func:`check_active_grant` would return a grant."""
    try:
        check_active_grant(conn, principal, dataset_id, now)
    except Denied:
        return False
    return True


# --- reads ----------------------------------------------------------------------------------
def get_grant(conn: sqlite3.Connection, grant_id: int) -> Grant:
    """The grant with this id. Raises NotFound(``unknown_grant``)."""
    row = conn.execute(f"{_SELECT} WHERE g.id = ?", (int(grant_id),)).fetchone()
    if row is None:
        raise NotFound("unknown_grant", f"There is no grant {grant_id}.")
    return _grant(row)


def list_grants(conn: sqlite3.Connection, *, team_id: int | None = None,
                dataset_id: str | None = None) -> list[Grant]:
    """Grants newest first, optionally for one team and/or dataset."""
    clauses, params = [], []
    if team_id is not None:
        clauses.append("g.team_id = ?")
        params.append(team_id)
    if dataset_id is not None:
        clauses.append("g.dataset_id = ?")
        params.append(dataset_id)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(f"{_SELECT}{where} ORDER BY g.id DESC", params).fetchall()
    return [_grant(r) for r in rows]


# --- writes (callers check permissions; each call writes its audit events) ------------------
def _write_scope(conn: sqlite3.Connection):
    return nullcontext(conn) if conn.in_transaction else transaction(conn)


def create_grant(conn: sqlite3.Connection, *, actor: str, team_id: int, dataset_id: str,
                 tier: str, purpose: str, approved_by: int, days: int,
                 conditions: str = "", request_id: int | None = None,
                 now: datetime | None = None) -> Grant:
    """Insert an active grant of ``days`` days from ``now``, superseding the team's active grant
    for the dataset (revoked, reason "superseded by grant N"; one already past its expiry is
    recorded as expired instead). Joins the caller's transaction.

    Writes ``grant.supersede`` (when there was one) and ``grant.create`` audit events."""
    moment = now_utc(now)
    with _write_scope(conn):
        old = conn.execute(
            f"{_SELECT} WHERE g.team_id = ? AND g.dataset_id = ? AND g.status = 'active'",
            (team_id, dataset_id),
        ).fetchone()
        if old is not None and _grant(old).is_past_expiry(moment):
            _mark_expired(conn, _grant(old), "system")  # it ended on its own; not superseded
            old = None
        if old is not None:
            check_transition("grant", "active", "revoked", "supersede")
            conn.execute(
                "UPDATE grants SET status = 'revoked', revoked_at = ?, revoked_by = ?,"
                " revoked_reason = 'superseded by a newer grant' WHERE id = ?",
                (to_text(moment), approved_by, old["id"]),
            )
        cur = conn.execute(
            "INSERT INTO grants (team_id, dataset_id, tier, purpose, conditions, request_id,"
            " approved_by, starts_at, expires_at, status, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?) RETURNING id",
            (team_id, dataset_id, tier, purpose, conditions, request_id, approved_by,
             to_text(moment), to_text(moment + timedelta(days=days)), to_text(moment)),
        )
        grant = get_grant(conn, int(cur.fetchone()[0]))
        if old is not None:
            conn.execute(
                "UPDATE grants SET superseded_by = ?, revoked_reason = ? WHERE id = ?",
                (grant.id, f"superseded by grant {grant.id}", old["id"]),
            )
            audit.record(conn, actor=actor, team=grant.team, action="grant.supersede",
                         target=f"grant:{old['id']}", decision="done",
                         reason=f"superseded by grant {grant.id}",
                         details={"dataset": dataset_id, "new_grant": grant.id})
        audit.record(conn, actor=actor, team=grant.team, action="grant.create",
                     target=f"grant:{grant.id}", decision="done",
                     details={"dataset": dataset_id, "tier": tier, "days": days,
                              "expires_at": grant.expires_at, "request": request_id})
        return grant


def revoke(conn: sqlite3.Connection, *, actor: str, grant_id: int, revoked_by: int,
           reason: str, now: datetime | None = None) -> Grant:
    """Revoke an active grant (also one past its expiry but not yet marked). Raises NotFound,
    Denied(``invalid_transition``) for an expired or already revoked grant."""
    moment = now_utc(now)
    with _write_scope(conn):
        grant = get_grant(conn, grant_id)
        check_transition("grant", grant.status, "revoked", "revoke")
        conn.execute(
            "UPDATE grants SET status = 'revoked', revoked_at = ?, revoked_by = ?,"
            " revoked_reason = ? WHERE id = ? AND status = 'active'",
            (to_text(moment), revoked_by, reason, grant.id),
        )
        audit.record(conn, actor=actor, team=grant.team, action="grant.revoke",
                     target=f"grant:{grant.id}", decision="done", reason=reason,
                     details={"dataset": grant.dataset_id, "tier": grant.tier})
        return get_grant(conn, grant.id)


def expire_due(conn: sqlite3.Connection, *, actor: str = "system",
               now: datetime | None = None) -> list[int]:
    """Mark every active grant past its expiry as expired, one audit event each.
    Returns the ids marked. Idempotent."""
    moment = now_utc(now)
    marked = []
    with _write_scope(conn):
        rows = conn.execute(
            f"{_SELECT} WHERE g.status = 'active' AND g.expires_at <= ? ORDER BY g.id",
            (to_text(moment),),
        ).fetchall()
        for row in rows:
            _mark_expired(conn, _grant(row), actor)
            marked.append(int(row["id"]))
    return marked


def _mark_expired(conn: sqlite3.Connection, grant: Grant, actor: str) -> None:
    check_transition("grant", "active", "expired", "expire")
    cur = conn.execute("UPDATE grants SET status = 'expired' WHERE id = ? AND status = 'active'",
                       (grant.id,))
    if cur.rowcount:
        audit.record(conn, actor=actor, team=grant.team, action="grant.expire",
                     target=f"grant:{grant.id}", decision="done",
                     details={"dataset": grant.dataset_id, "expires_at": grant.expires_at})


def _expire_lazily(conn: sqlite3.Connection, grant: Grant, moment: datetime) -> None:
    """Record an expiry found at check time. Best effort: if the store is busy, the denial still
    stands and `portal access expire` records it later."""
    try:
        with _write_scope(conn):
            _mark_expired(conn, grant, "system")
    except sqlite3.OperationalError:
        log.warning("could not record expiry of grant %s now; it stays denied", grant.id)
