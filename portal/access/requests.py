"""Access requests: validation against the tier's request requirements, and the store queries.

A request is made by a member of a startup team for one dataset tier. Its state moves only
through :func:`move`, which checks the declared transition (``portal.access.states``) and that no
one else moved it first (the update is conditional on the state that was read).
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from portal.access.states import REQUEST_OPEN, check_transition
from portal.errors import Denied, InvalidInput, NotFound, Rejected
from portal.policy.model import Tier
from portal.store.db import utcnow

ETHICS_REFERENCE_MAX_CHARS = 200

_SELECT = (
    "SELECT r.*, t.slug AS team_slug, u.email AS requested_by_email FROM access_requests r"
    " JOIN teams t ON t.id = r.team_id JOIN users u ON u.id = r.requested_by"
)


@dataclass(frozen=True)
class Review:
    """One staff decision on a request."""

    reviewer: str  # e-mail
    reviewer_id: int
    decision: str  # approve or deny
    tier: str | None
    days: int | None
    conditions: str
    reason: str | None
    created_at: str


@dataclass(frozen=True)
class AccessRequest:
    """An access request as pages and the CLI see it. Text fields are stored verbatim."""

    id: int
    team: str
    team_id: int
    requested_by: str  # e-mail
    requested_by_id: int
    dataset_id: str
    tier: str
    purpose: str
    agreed_terms: bool
    ethics_reference: str | None
    approvals_required: int
    status: str
    decision_reason: str | None
    grant_id: int | None
    created_at: str
    updated_at: str
    reviews: tuple[Review, ...] = field(default_factory=tuple)
    terms_hash: str | None = None  # fingerprint of the terms agreed to
    tier_hash: str | None = None  # fingerprint of the tier it was made or re-confirmed under
    confirmed_at: str | None = None  # when the team last re-confirmed it (None: never)

    @property
    def approvals(self) -> tuple[Review, ...]:
        return tuple(r for r in self.reviews if r.decision == "approve")

    @property
    def is_open(self) -> bool:
        return self.status in REQUEST_OPEN

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["approvals_given"] = len(self.approvals)
        return data


def validate_submission(tier: Tier, purpose: str, agreed_terms: bool,
                        ethics_reference: str | None) -> None:
    """Check a submission against the tier's request requirements. Raises InvalidInput with
    code ``purpose_too_short``, ``purpose_too_long``, ``purpose_invalid`` (control characters),
    ``terms_not_agreed``, ``ethics_reference_required`` or ``ethics_reference_invalid``."""
    rules = tier.request
    if not isinstance(purpose, str) or "\x00" in purpose:
        raise InvalidInput("purpose_invalid", "The purpose must be plain text.")
    length = len(purpose.strip())
    if length < rules.purpose_min_chars:
        raise InvalidInput("purpose_too_short", f"Describe the purpose in at least "
                                                f"{rules.purpose_min_chars} characters.")
    if length > rules.purpose_max_chars:
        raise InvalidInput("purpose_too_long", f"The purpose may be at most "
                                               f"{rules.purpose_max_chars} characters.")
    if rules.terms_required and agreed_terms is not True:
        raise InvalidInput("terms_not_agreed", "You must agree to the dataset's terms of use.")
    reference = (ethics_reference or "").strip()
    if rules.ethics_reference_required and not reference:
        raise InvalidInput("ethics_reference_required", "This tier requires an ethics approval "
                                                        "reference.")
    if len(reference) > ETHICS_REFERENCE_MAX_CHARS or "\x00" in reference:
        raise InvalidInput("ethics_reference_invalid", f"The ethics reference must be plain text "
                                                       f"of at most {ETHICS_REFERENCE_MAX_CHARS} "
                                                       f"characters.")


def insert(conn: sqlite3.Connection, *, team_id: int, requested_by: int, dataset_id: str,
           tier: str, purpose: str, agreed_terms: bool, terms_hash: str | None,
           ethics_reference: str | None, approvals_required: int,
           tier_hash: str | None = None) -> AccessRequest:
    """Insert a ``submitted`` request. Raises Rejected(``duplicate_request``) when the team
    already has an open request for the dataset and tier. Call inside a transaction."""
    open_one = conn.execute(
        "SELECT id FROM access_requests WHERE team_id = ? AND dataset_id = ? AND tier = ?"
        " AND status IN ('submitted', 'awaiting_second_approval')",
        (team_id, dataset_id, tier),
    ).fetchone()
    if open_one is not None:
        raise Rejected("duplicate_request", f"Your team already has an open request "
                                            f"(#{open_one['id']}) for this dataset and tier.")
    now = utcnow()
    try:
        cur = conn.execute(
            "INSERT INTO access_requests (team_id, requested_by, dataset_id, tier, purpose,"
            " agreed_terms, terms_hash, ethics_reference, approvals_required, tier_hash, status,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'submitted', ?, ?)"
            " RETURNING id",
            (team_id, requested_by, dataset_id, tier, purpose, int(bool(agreed_terms)),
             terms_hash, (ethics_reference or "").strip() or None, approvals_required,
             tier_hash, now, now),
        )
    except sqlite3.IntegrityError:
        raise Rejected("duplicate_request", "Your team already has an open request for this "
                                            "dataset and tier.") from None
    return get(conn, int(cur.fetchone()[0]))


def _reviews(conn: sqlite3.Connection, request_id: int) -> tuple[Review, ...]:
    rows = conn.execute(
        "SELECT v.*, u.email AS reviewer_email FROM request_reviews v"
        " JOIN users u ON u.id = v.reviewer_id WHERE v.request_id = ? ORDER BY v.id",
        (request_id,),
    ).fetchall()
    return tuple(Review(reviewer=r["reviewer_email"], reviewer_id=r["reviewer_id"],
                        decision=r["decision"], tier=r["tier"], days=r["days"],
                        conditions=r["conditions"], reason=r["reason"],
                        created_at=r["created_at"]) for r in rows)


def _request(conn: sqlite3.Connection, row: sqlite3.Row) -> AccessRequest:
    return AccessRequest(
        id=row["id"], team=row["team_slug"], team_id=row["team_id"],
        requested_by=row["requested_by_email"], requested_by_id=row["requested_by"],
        dataset_id=row["dataset_id"], tier=row["tier"], purpose=row["purpose"],
        agreed_terms=bool(row["agreed_terms"]), ethics_reference=row["ethics_reference"],
        approvals_required=row["approvals_required"], status=row["status"],
        decision_reason=row["decision_reason"], grant_id=row["grant_id"],
        created_at=row["created_at"], updated_at=row["updated_at"],
        reviews=_reviews(conn, row["id"]),
        terms_hash=row["terms_hash"], tier_hash=row["tier_hash"],
        confirmed_at=row["confirmed_at"],
    )


def get(conn: sqlite3.Connection, request_id: int) -> AccessRequest:
    """The request with this id. Raises NotFound(``unknown_request``)."""
    try:
        key = int(request_id)
    except (TypeError, ValueError):
        raise NotFound("unknown_request", "There is no such access request.") from None
    row = conn.execute(f"{_SELECT} WHERE r.id = ?", (key,)).fetchone()
    if row is None:
        raise NotFound("unknown_request", "There is no such access request.")
    return _request(conn, row)


def list_requests(conn: sqlite3.Connection, *, team_id: int | None = None,
                  statuses: tuple[str, ...] | None = None,
                  oldest_first: bool = False) -> list[AccessRequest]:
    """Requests, newest first (or oldest first), optionally for one team and some states."""
    clauses, params = [], []
    if team_id is not None:
        clauses.append("r.team_id = ?")
        params.append(team_id)
    if statuses:
        clauses.append(f"r.status IN ({', '.join('?' for _ in statuses)})")
        params.extend(statuses)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    order = "ASC" if oldest_first else "DESC"
    rows = conn.execute(f"{_SELECT}{where} ORDER BY r.id {order}", params).fetchall()
    return [_request(conn, r) for r in rows]


def move(conn: sqlite3.Connection, request: AccessRequest, target: str, action: str, *,
         reason: str | None = None, grant_id: int | None = None) -> AccessRequest:
    """Move ``request`` from the state it was read in to ``target`` by ``action``.

    Raises Denied(``invalid_transition``) when the table does not allow it, and
    Denied(``request_changed``) when someone else moved it since it was read."""
    check_transition("request", request.status, target, action)
    cur = conn.execute(
        "UPDATE access_requests SET status = ?, decision_reason = COALESCE(?, decision_reason),"
        " grant_id = COALESCE(?, grant_id), updated_at = ? WHERE id = ? AND status = ?",
        (target, reason, grant_id, utcnow(), request.id, request.status),
    )
    if cur.rowcount != 1:
        raise Denied("request_changed", "The request was changed by someone else; reload it.")
    return get(conn, request.id)


def add_review(conn: sqlite3.Connection, request: AccessRequest, reviewer_id: int,
               decision: str, *, tier: str | None = None, days: int | None = None,
               conditions: str = "", reason: str | None = None) -> None:
    """Record one staff decision. Raises Denied(``already_reviewed``) when this reviewer has
    already decided this request (the same person never gives two approvals)."""
    try:
        conn.execute(
            "INSERT INTO request_reviews (request_id, reviewer_id, decision, tier, days,"
            " conditions, reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (request.id, reviewer_id, decision, tier, days, conditions, reason, utcnow()),
        )
    except sqlite3.IntegrityError:
        raise Denied("already_reviewed", "You have already reviewed this request; another "
                                         "staff member must give the next decision.") from None


def reconfirm(conn: sqlite3.Connection, request: AccessRequest, *, agreed_terms: bool,
              terms_hash: str | None, tier_hash: str) -> AccessRequest:
    """Record that the team confirmed an open request under the tier and terms as they read
    now (new fingerprints, agreement). Raises Denied(``request_changed``) when someone moved
    the request since it was read. Call inside a transaction."""
    cur = conn.execute(
        "UPDATE access_requests SET agreed_terms = ?, terms_hash = ?, tier_hash = ?,"
        " confirmed_at = ?, updated_at = ? WHERE id = ? AND status = ?",
        (int(bool(agreed_terms)), terms_hash, tier_hash, utcnow(), utcnow(), request.id,
         request.status),
    )
    if cur.rowcount != 1:
        raise Denied("request_changed", "The request was changed by someone else; reload it.")
    return get(conn, request.id)
