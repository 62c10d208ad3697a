"""Reviewing access requests: separation of duties, approval (with a two-person rule when the tier
asks for it), denial and withdrawal.

Every function here runs inside the caller's transaction (``portal.store.db.transaction``), reads
the request inside it, and writes the state change, the grant and their audit events together —
so two staff approving at once serialise on the write lock and only one grant is created.

Who may decide is ruled in :mod:`portal.authz`: separation of duties
(:func:`~portal.authz.check_review`: active staff, not the requester, not a member of the
requesting team, one decision per person) and approval at a tier
(:func:`~portal.authz.check_approve_at_tier`: the request is re-validated
against the tier it is granted at, and a request whose terms or tier changed since it was made
must be re-confirmed by the team first).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from portal import audit, authz
from portal.access import grants, requests
from portal.access.policy import terms_hash, tier_fingerprint, tier_policy
from portal.access.requests import AccessRequest
from portal.access.states import check_transition
from portal.config import Settings
from portal.errors import Denied, InvalidInput, Rejected
from portal.identity import Principal

REASON_MAX_CHARS = 2000
CONDITIONS_MAX_CHARS = 4000


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
    Raises NotFound (``unknown_request``, ``unknown_tier``), Denied and Rejected (see
    :func:`portal.authz.check_approve_at_tier`: separation of duties, ``team_suspended``,
    ``invalid_transition``, the chosen tier's requirements, ``terms_changed``, ``tier_changed``,
    ``tier_differs_from_first_approval``), InvalidInput (``invalid_duration``,
    ``invalid_conditions``), Rejected (``duration_exceeds_policy``)."""
    request = requests.get(conn, request_id)
    chosen = tier or request.tier
    reviewer, _, rules = authz.check_approve_at_tier(conn, settings, principal, request, chosen)
    days = check_days(days, rules.max_grant_days)
    conditions = clean_text(conditions, "invalid_conditions", "conditions", CONDITIONS_MAX_CHARS,
                            False)
    earlier = request.approvals
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
    Denied (see :func:`portal.authz.check_review`, ``invalid_transition``), InvalidInput
    (``reason_required``)."""
    request = requests.get(conn, request_id)
    reviewer = authz.check_review(conn, principal, request)
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
    request = _own_team_request(conn, principal, request_id)
    moved = requests.move(conn, request, "withdrawn", "withdraw")
    audit.record(conn, actor=principal.actor, team=request.team, action="request.withdraw",
                 target=f"request:{request.id}", decision="done",
                 details={"dataset": request.dataset_id, "tier": request.tier})
    return moved


def _own_team_request(conn: sqlite3.Connection, principal: Principal,
                      request_id: int) -> AccessRequest:
    request = requests.get(conn, request_id)
    _, team = authz.check_member(conn, principal)
    if team["id"] != request.team_id:
        raise Denied("not_your_request", "This request belongs to another team.")
    return request


def reconfirm(conn: sqlite3.Connection, settings: Settings, principal: Principal,
              request_id: int, agreed_terms: bool) -> AccessRequest:
    """A member re-confirms an open request of their team under the tier and terms as they
    read now (after a policy change refused its approval with ``terms_changed`` or
    ``tier_changed``). The request is validated again against the tier, like a submission.
    Raises NotFound, Denied (membership codes, ``not_your_request``, ``invalid_transition``),
    InvalidInput (see :func:`portal.access.requests.validate_submission`)."""
    request = _own_team_request(conn, principal, request_id)
    if not request.is_open:
        check_transition("request", request.status, request.status, "reconfirm")
    policy, rules = tier_policy(settings, request.dataset_id, request.tier)
    requests.validate_submission(rules, request.purpose, agreed_terms, request.ethics_reference)
    moved = requests.reconfirm(conn, request, agreed_terms=agreed_terms,
                               terms_hash=terms_hash(policy) if agreed_terms else None,
                               tier_hash=tier_fingerprint(policy, request.tier))
    audit.record(conn, actor=principal.actor, team=request.team, action="request.reconfirm",
                 target=f"request:{request.id}", decision="done",
                 details={"dataset": request.dataset_id, "tier": request.tier})
    return moved
