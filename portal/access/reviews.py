"""Reviewing access requests: separation of duties, approval (with a two-person rule when the tier
asks for it), denial and withdrawal.

Every function here runs inside the caller's transaction (``portal.store.db.transaction``), reads
the request inside it, and writes the state change, the grant and their audit events together —
so two staff approving at once serialise on the write lock and only one grant is created.

Separation of duties (:func:`check_can_review`): the reviewer must be active staff; must not be
the person who made the request (also when a requester later became staff); must not be a member
of the requesting team; and decides each request at most once, so one person never gives two of
the approvals a tier requires.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from portal import audit
from portal.access import grants, requests
from portal.access.actors import check_member_team, check_staff
from portal.access.policy import tier_policy
from portal.access.requests import AccessRequest
from portal.access.states import REQUEST_OPEN, check_transition
from portal.config import Settings
from portal.errors import Denied, InvalidInput, Rejected
from portal.identity import Principal

REASON_MAX_CHARS = 2000
CONDITIONS_MAX_CHARS = 4000


def check_can_review(conn: sqlite3.Connection, principal: Principal,
                     request: AccessRequest) -> sqlite3.Row:
    """The reviewer's user row when they may decide ``request``. Raises Denied with code
    ``staff_only``, ``user_suspended``, ``own_request``, ``own_team`` or ``already_reviewed``."""
    reviewer = check_staff(conn, principal)
    if reviewer["id"] == request.requested_by_id:
        raise Denied("own_request", "You cannot review a request you made yourself.")
    in_team = conn.execute("SELECT 1 FROM memberships WHERE user_id = ? AND team_id = ?",
                           (reviewer["id"], request.team_id)).fetchone()
    if in_team is not None:
        raise Denied("own_team", "You cannot review a request from your own team.")
    if any(r.reviewer_id == reviewer["id"] for r in request.reviews):
        raise Denied("already_reviewed", "You have already reviewed this request; another "
                                         "staff member must give the next decision.")
    return reviewer


def can_review(conn: sqlite3.Connection, principal: Principal, request: AccessRequest) -> bool:
    """True when :func:`check_can_review` passes."""
    try:
        check_can_review(conn, principal, request)
    except Denied:
        return False
    return True


def clean_text(value: str | None, code: str, what: str, limit: int, required: bool) -> str:
    text = (value or "").strip()
    if required and not text:
        raise InvalidInput(code, f"Give {what}.")
    if len(text) > limit or "\x00" in text:
        raise InvalidInput(code, f"{what[0].upper()}{what[1:]} must be plain text of at most "
                                 f"{limit} characters.")
    return text


def check_days(days: object, max_days: int) -> int:
    """A grant duration in whole days, 1..``max_days``. Raises InvalidInput(``invalid_duration``)
    or Rejected(``duration_exceeds_policy``)."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise InvalidInput("invalid_duration", "The duration must be a whole number of days, "
                                               "at least 1.")
    if days > max_days:
        raise Rejected("duration_exceeds_policy", f"This tier allows grants of at most "
                                                  f"{max_days} days.")
    return days


def approve(conn: sqlite3.Connection, settings: Settings, principal: Principal,
            request_id: int, days: int, tier: str | None = None, conditions: str = "",
            now: datetime | None = None) -> AccessRequest:
    """Approve a request (inside the caller's transaction).

    With fewer approvals than the tier requires, the request becomes
    ``awaiting_second_approval``; the last approval creates the grant (the tier of the first
    approval, the shortest duration any approver chose, all conditions) in the same transaction.
    Raises NotFound (``unknown_request``, ``unknown_tier``), Denied (see
    :func:`check_can_review`, ``invalid_transition``, ``team_suspended``), InvalidInput
    (``invalid_duration``, ``invalid_conditions``), Rejected (``duration_exceeds_policy``,
    ``tier_differs_from_first_approval``)."""
    request = requests.get(conn, request_id)
    reviewer = check_can_review(conn, principal, request)
    if request.status not in REQUEST_OPEN:
        check_transition("request", request.status, "approved", "approve")
    team = conn.execute("SELECT status FROM teams WHERE id = ?", (request.team_id,)).fetchone()
    if team["status"] != "active":
        raise Denied("team_suspended", "The requesting team is suspended; reactivate it before "
                                       "approving.")
    chosen = tier or request.tier
    _, rules = tier_policy(settings, request.dataset_id, chosen)
    days = check_days(days, rules.max_grant_days)
    conditions = clean_text(conditions, "invalid_conditions", "conditions", CONDITIONS_MAX_CHARS,
                       False)
    earlier = request.approvals
    if earlier and earlier[0].tier != chosen:
        raise Rejected("tier_differs_from_first_approval",
                       f"The first approval was for the {earlier[0].tier} tier; approve that tier "
                       f"or deny the request.")
    requests.add_review(conn, request, reviewer["id"], "approve", tier=chosen, days=days,
                        conditions=conditions)
    required = max(request.approvals_required, rules.approvals_required)
    given = len(earlier) + 1
    details = {"dataset": request.dataset_id, "tier": chosen, "days": days,
               "approvals_given": given, "approvals_required": required}
    if given < required:
        moved = requests.move(conn, request, "awaiting_second_approval", "approve")
    else:
        grant = grants.create_grant(
            conn, actor=principal.actor, team_id=request.team_id, dataset_id=request.dataset_id,
            tier=chosen, purpose=request.purpose, approved_by=reviewer["id"],
            days=min([days, *[r.days for r in earlier if r.days]]),
            conditions=_join_conditions([*[r.conditions for r in earlier], conditions]),
            request_id=request.id, now=now)
        moved = requests.move(conn, request, "approved", "approve", grant_id=grant.id)
        details["grant"] = grant.id
    audit.record(conn, actor=principal.actor, team=request.team, action="request.approve",
                 target=f"request:{request.id}", decision="done",
                 reason=moved.status, details=details)
    return moved


def _join_conditions(parts: list[str]) -> str:
    seen: list[str] = []
    for part in parts:
        if part and part not in seen:
            seen.append(part)
    return "\n".join(seen)


def deny(conn: sqlite3.Connection, principal: Principal, request_id: int,
         reason: str) -> AccessRequest:
    """Deny an open request with a reason (inside the caller's transaction). Raises NotFound,
    Denied (see :func:`check_can_review`, ``invalid_transition``), InvalidInput
    (``reason_required``)."""
    request = requests.get(conn, request_id)
    reviewer = check_can_review(conn, principal, request)
    reason = clean_text(reason, "reason_required", "a reason", REASON_MAX_CHARS, True)
    check_transition("request", request.status, "denied", "deny")
    requests.add_review(conn, request, reviewer["id"], "deny", reason=reason)
    moved = requests.move(conn, request, "denied", "deny", reason=reason)
    audit.record(conn, actor=principal.actor, team=request.team, action="request.deny",
                 target=f"request:{request.id}", decision="done", reason=reason,
                 details={"dataset": request.dataset_id, "tier": request.tier})
    return moved


def withdraw(conn: sqlite3.Connection, principal: Principal, request_id: int) -> AccessRequest:
    """Withdraw an open request of the principal's own team (inside the caller's transaction).
    Raises NotFound, Denied (``not_a_member``, ``user_suspended``, ``team_suspended``,
    ``not_your_request``, ``invalid_transition``)."""
    request = requests.get(conn, request_id)
    _, team = check_member_team(conn, principal)
    if team["id"] != request.team_id:
        raise Denied("not_your_request", "This request belongs to another team.")
    moved = requests.move(conn, request, "withdrawn", "withdraw")
    audit.record(conn, actor=principal.actor, team=request.team, action="request.withdraw",
                 target=f"request:{request.id}", decision="done",
                 details={"dataset": request.dataset_id, "tier": request.tier})
    return moved
