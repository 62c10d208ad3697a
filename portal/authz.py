"""Who may do what: every permission rule of the portal, in one module.

Paired checks, as in OpenSAFELY's airlock: ``check_*`` raises a named error
(:class:`~portal.errors.Denied`, :class:`~portal.errors.Rejected` or
:class:`~portal.errors.NotFound`) with a stable code and a reason; ``can_*`` returns a bool by
calling it. Never two copies of the logic: pages, the CLI, the API and the workers call these.

Every check re-reads the store (user, membership, team, grant, request, run): a principal is only
*who signed in*, never a cache of what they may do. So a suspension, a removal, a revocation or an
expiry takes effect at the next check, whatever the principal object says.

Roles:

- **staff**: a ``users`` row with role ``staff`` and status ``active`` (a suspended staff account
  is refused ``user_suspended``);
- **member**: a ``users`` row with role ``member``, status ``active``, in an ``active`` team;
- **operator**: whoever runs the ``portal`` command on the server without ``--user`` (they hold
  the portal's home folder already). The operator may run the installation's own maintenance
  commands (:func:`check_staff_or_operator`) but is never a staff *person*: it cannot review,
  grant or revoke, which need a named, accountable member of staff.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING, Any

from portal.errors import Denied, NotFound, PortalError, Rejected
from portal.identity import Principal

if TYPE_CHECKING:
    from portal.access.grants import Grant
    from portal.access.requests import AccessRequest
    from portal.config import Settings
    from portal.policy.model import DatasetPolicy, Tier

OPERATOR_ACTOR = "cli-operator"
OPERATOR = Principal(user_id=None, email=OPERATOR_ACTOR, role="operator")


def _allowed(check: Any, *args: Any, **kwargs: Any) -> bool:
    try:
        check(*args, **kwargs)
    except PortalError:
        return False
    return True


def _user(conn: sqlite3.Connection, principal: Principal) -> sqlite3.Row | None:
    if principal.user_id is None:
        return None
    return conn.execute("SELECT * FROM users WHERE id = ?", (principal.user_id,)).fetchone()


# --- staff, operator, members ---------------------------------------------------------------
def check_staff(conn: sqlite3.Connection, principal: Principal) -> sqlite3.Row:
    """The principal's user row when they are active platform staff (re-read from the store).
    Raises Denied ``staff_only`` (members, anonymous, the operator, invited or removed staff) or
    ``user_suspended``."""
    user = _user(conn, principal)
    if user is None or user["role"] != "staff" or user["status"] in ("invited", "removed"):
        raise Denied("staff_only", "Only platform staff can do this.")
    if user["status"] != "active":
        raise Denied("user_suspended", "Your account is suspended; contact platform staff.")
    return user


def can_staff(conn: sqlite3.Connection, principal: Principal) -> bool:
    """True when :func:`check_staff` passes."""
    return _allowed(check_staff, conn, principal)


def is_operator(principal: Principal) -> bool:
    """True for the server's own operator (the CLI without ``--user``); never a signed-in
    person (sign-in and tokens never produce this role)."""
    return principal.role == "operator" and principal.user_id is None


def check_staff_or_operator(conn: sqlite3.Connection, principal: Principal) -> None:
    """Staff maintenance that the installation's operator may also run (audit verify/list,
    release builds, queue work). Raises as :func:`check_staff` otherwise."""
    if is_operator(principal):
        return
    check_staff(conn, principal)


def can_staff_or_operator(conn: sqlite3.Connection, principal: Principal) -> bool:
    """True when :func:`check_staff_or_operator` passes."""
    return _allowed(check_staff_or_operator, conn, principal)


def check_member(conn: sqlite3.Connection, principal: Principal,
                 staff_code: str = "not_a_member") -> tuple[sqlite3.Row, sqlite3.Row]:
    """(user row, team row) when the principal is an active member of an active team.

    Raises Denied ``not_a_member`` (staff — or ``staff_code`` —, unaffiliated, invited or
    removed users), ``user_suspended`` or ``team_suspended``."""
    user = _user(conn, principal)
    if user is not None and user["role"] == "staff":
        raise Denied(staff_code, "Platform staff are not members of a startup team, so they "
                                 "cannot do this.")
    if user is None or user["role"] != "member" or user["status"] in ("invited", "removed"):
        raise Denied("not_a_member", "Only members of a startup team can do this.")
    if user["status"] != "active":
        raise Denied("user_suspended", "Your account is suspended; contact platform staff.")
    team = conn.execute(
        "SELECT t.* FROM teams t JOIN memberships m ON m.team_id = t.id WHERE m.user_id = ?",
        (user["id"],),
    ).fetchone()
    if team is None:
        raise Denied("not_a_member", "Your account is not a member of a startup team.")
    if team["status"] != "active":
        raise Denied("team_suspended", "Your team's access is suspended; contact platform "
                                       "staff.")
    return user, team


def can_member(conn: sqlite3.Connection, principal: Principal) -> bool:
    """True when :func:`check_member` passes."""
    return _allowed(check_member, conn, principal)


def check_browse(conn: sqlite3.Connection, principal: Principal) -> None:
    """Reading the catalog: active staff or an active member. Raises
    Denied(``sign_in_required``), or ``user_suspended``/``team_suspended``."""
    if can_staff(conn, principal):
        return
    try:
        check_member(conn, principal)
    except Denied as exc:
        if exc.code in ("user_suspended", "team_suspended"):
            raise
        raise Denied("sign_in_required", "Sign in to browse the dataset catalog.") from None


def can_browse(conn: sqlite3.Connection, principal: Principal) -> bool:
    """True when :func:`check_browse` passes."""
    return _allowed(check_browse, conn, principal)


# --- datasets -------------------------------------------------------------------------------
def check_dataset(conn: sqlite3.Connection, principal: Principal, dataset_id: str,
                  now: datetime | None = None) -> Grant:
    """The principal's team's active, unexpired grant for ``dataset_id``
    (:func:`portal.access.grants.check_active_grant`; expiry is enforced here, at check time)."""
    from portal.access.grants import check_active_grant

    return check_active_grant(conn, principal, dataset_id, now)


def can_dataset(conn: sqlite3.Connection, principal: Principal, dataset_id: str,
                now: datetime | None = None) -> bool:
    """True when :func:`check_dataset` passes."""
    return _allowed(check_dataset, conn, principal, dataset_id, now)


def check_team_access(conn: sqlite3.Connection, team: str, dataset_id: str | None,
                      member_email: str | None = None,
                      now: datetime | None = None) -> None:
    """For work done on a team's behalf without the person present (validation workers, report
    release): the team (by slug) is active, its grant for ``dataset_id`` (when given) is active
    and unexpired, and the member who asked (``member_email``, when it is a member) is still an
    active member of it. Raises Denied ``team_suspended``, ``no_grant``, ``grant_expired``,
    ``grant_revoked``, ``user_suspended`` or ``not_a_member``."""
    from portal.access.grants import latest_grant, now_utc

    row = conn.execute("SELECT id, status FROM teams WHERE slug = ?", (team,)).fetchone()
    if row is None:
        raise Denied("not_a_member", "The team no longer exists.")
    if row["status"] != "active":
        raise Denied("team_suspended", "The team's access is suspended.")
    if member_email:
        user = conn.execute("SELECT u.role, u.status, m.team_id FROM users u LEFT JOIN"
                            " memberships m ON m.user_id = u.id WHERE u.email = ?",
                            (member_email,)).fetchone()
        if user is not None and user["role"] == "member":
            if user["team_id"] != row["id"] or user["status"] == "removed":
                raise Denied("not_a_member", "The member who asked is no longer in the team.")
            if user["status"] != "active":
                raise Denied("user_suspended", "The member who asked is suspended.")
    if dataset_id is None:
        return
    grant = latest_grant(conn, int(row["id"]), dataset_id)
    if grant is None:
        raise Denied("no_grant", f"The team has no grant for {dataset_id}.")
    if grant.status == "revoked":
        raise Denied("grant_revoked", f"The team's access to {dataset_id} was revoked.")
    if grant.status != "active" or grant.is_past_expiry(now_utc(now)):
        raise Denied("grant_expired", f"The team's access to {dataset_id} expired on "
                                      f"{grant.expires_at[:10]}.")


def can_team_access(conn: sqlite3.Connection, team: str, dataset_id: str | None,
                    member_email: str | None = None, now: datetime | None = None) -> bool:
    """True when :func:`check_team_access` passes."""
    return _allowed(check_team_access, conn, team, dataset_id, member_email, now)


def check_download(conn: sqlite3.Connection, settings: Settings, principal: Principal,
                   dataset_id: str, result: Any = None) -> Grant:
    """May the principal take ``result`` (a query result of ``dataset_id``) off the platform?
    The grant is re-read at the moment of asking (a click), and the tier's ``download`` decides:
    ``none`` never, ``rows`` yes, ``aggregates`` only aggregate results. Raises Denied
    (grant codes, ``download_not_allowed``, ``result_not_yours``)."""
    from portal.services.context import Context
    from portal.services.policies import resolved_tier

    grant = check_dataset(conn, principal, dataset_id)
    _, resolved = resolved_tier(Context(settings=settings, conn=conn), dataset_id, grant.tier)
    if result is not None and (result.dataset_id != dataset_id or result.tier != grant.tier):
        raise Denied("result_not_yours", "This result was computed under another grant; run "
                                         "the query again.")
    mode = resolved.settings.download
    if mode == "rows":
        return grant
    if mode == "aggregates" and resolved.settings.result_mode == "aggregate" and (
            result is None or result.result_mode == "aggregate"):
        return grant
    raise Denied("download_not_allowed", f"The {grant.tier} tier of {dataset_id} does not allow "
                                         f"downloading results.")


def can_download(conn: sqlite3.Connection, settings: Settings, principal: Principal,
                 dataset_id: str, result: Any = None) -> bool:
    """True when :func:`check_download` passes."""
    return _allowed(check_download, conn, settings, principal, dataset_id, result)


# --- validation runs ------------------------------------------------------------------------
def check_view_run(conn: sqlite3.Connection, principal: Principal, run: Any) -> None:
    """Staff see every run; an active member sees their own team's. Anyone else gets
    NotFound(``run_not_found``), so another team's run ids reveal nothing."""
    if can_staff(conn, principal):
        return
    try:
        _, team = check_member(conn, principal)
    except Denied:
        raise NotFound("run_not_found", "There is no such validation run.") from None
    if run["team"] != team["slug"]:
        raise NotFound("run_not_found", "There is no such validation run.")


def can_view_run(conn: sqlite3.Connection, principal: Principal, run: Any) -> bool:
    """True when :func:`check_view_run` passes."""
    return _allowed(check_view_run, conn, principal, run)


def run_dataset(conn: sqlite3.Connection, run: Any) -> str | None:
    """The dataset whose grant a validation run depends on, from the task card version the
    run was made under; None when that task needs no grant."""
    from sandbox.store import task_version

    card = task_version(conn, run["task_id"], run["task_version"])
    return card.dataset if card.grant_required else None


def check_run_access(conn: sqlite3.Connection, run: Any, now: datetime | None = None) -> None:
    """May work on ``run`` go on (a worker claiming it, storing its result, staff releasing it)?
    The team must still be active and hold the grant the task needs, and the member who
    submitted it must still be an active member (see :func:`check_team_access`)."""
    check_team_access(conn, run["team"], run_dataset(conn, run), run["requested_by"], now)


def can_run_access(conn: sqlite3.Connection, run: Any, now: datetime | None = None) -> bool:
    """True when :func:`check_run_access` passes."""
    return _allowed(check_run_access, conn, run, now)


def check_read_report(conn: sqlite3.Connection, principal: Principal, run: Any,
                      now: datetime | None = None) -> None:
    """Reading a run's results (figures, report): staff always; the run's team only once it is
    completed or released *and* while the team still holds the grant the task needs (re-read
    now, so a revoked or expired grant stops reads at once). Raises NotFound
    (``run_not_found``), Denied (``report_not_released``, grant codes)."""
    from sandbox.states import VISIBLE_TO_TEAM

    check_view_run(conn, principal, run)
    if can_staff(conn, principal):
        return
    if run["status"] not in VISIBLE_TO_TEAM:
        raise Denied("report_not_released",
                     "This report is awaiting review by platform staff."
                     if run["status"] == "awaiting_review" else
                     "This run has no report you can see.")
    dataset_id = run_dataset(conn, run)
    if dataset_id is not None:
        check_dataset(conn, principal, dataset_id, now)


def can_read_report(conn: sqlite3.Connection, principal: Principal, run: Any,
                    now: datetime | None = None) -> bool:
    """True when :func:`check_read_report` passes."""
    return _allowed(check_read_report, conn, principal, run, now)


# --- access requests ------------------------------------------------------------------------
def check_review(conn: sqlite3.Connection, principal: Principal,
                 request: AccessRequest) -> sqlite3.Row:
    """The reviewer's user row when they may decide ``request``. Separation of duties: active
    staff, not the requester (also when the requester later became staff), not a member of the
    requesting team, at most one decision per request. Raises Denied ``staff_only``,
    ``user_suspended``, ``own_request``, ``own_team`` or ``already_reviewed``."""
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
    """True when :func:`check_review` passes."""
    return _allowed(check_review, conn, principal, request)


def check_request_meets_tier(policy: DatasetPolicy, tier_name: str, rules: Tier,
                             purpose: str, agreed_terms: bool, ethics_reference: str | None,
                             terms_hash: str | None) -> None:
    """A request (or a direct grant's statement) measured against the tier it would be granted
    at: the tier's purpose length, terms agreement and ethics reference, and — when the terms
    must be agreed — agreement to the terms as they read *now* (``terms_hash``, the fingerprint
    stored when the team agreed). Raises Rejected with the requirement's code
    (``purpose_too_short``, ``purpose_too_long``, ``purpose_invalid``, ``terms_not_agreed``,
    ``ethics_reference_required``, ``ethics_reference_invalid``) or ``terms_changed``."""
    from portal.access.policy import terms_hash as current_terms_hash
    from portal.access.requests import validate_submission
    from portal.errors import InvalidInput

    try:
        validate_submission(rules, purpose, agreed_terms, ethics_reference)
    except InvalidInput as exc:
        raise Rejected(exc.code, f"This does not meet the {tier_name} tier's requirements: "
                                 f"{exc.message}") from None
    if rules.request.terms_required and terms_hash != current_terms_hash(policy):
        raise Rejected("terms_changed", f"The terms of {policy.dataset} changed since the team "
                                        f"agreed to them; the team must re-confirm the request.")


def check_approve_at_tier(conn: sqlite3.Connection, settings: Settings, principal: Principal,
                          request: AccessRequest, tier: str
                          ) -> tuple[sqlite3.Row, DatasetPolicy, Tier]:
    """(reviewer row, dataset policy, tier rules) when the principal may approve ``request`` at
    ``tier`` — the requested one or another tier of the dataset. The request is re-validated
    against the chosen tier's requirements (a 50-character purpose does not become a row-level
    grant whose requests need 80), and a request whose terms or tier changed since it was made
    must be re-confirmed by the team first. Raises as :func:`check_review`, Denied
    (``team_suspended``, ``invalid_transition``), NotFound (``unknown_tier``), Rejected (see
    :func:`check_request_meets_tier`, ``tier_changed``, ``tier_differs_from_first_approval``)."""
    from portal.access.policy import tier_fingerprint, tier_policy
    from portal.access.states import REQUEST_OPEN, check_transition

    reviewer = check_review(conn, principal, request)
    if request.status not in REQUEST_OPEN:
        check_transition("request", request.status, "approved", "approve")
    team = conn.execute("SELECT status FROM teams WHERE id = ?", (request.team_id,)).fetchone()
    if team is None or team["status"] != "active":
        raise Denied("team_suspended", "The requesting team is suspended; reactivate it before "
                                       "approving.")
    earlier = request.approvals
    if earlier and earlier[0].tier != tier:
        raise Rejected("tier_differs_from_first_approval",
                       f"The first approval was for the {earlier[0].tier} tier; approve that tier "
                       f"or deny the request.")
    policy, rules = tier_policy(settings, request.dataset_id, tier)
    check_request_meets_tier(policy, tier, rules, request.purpose, request.agreed_terms,
                             request.ethics_reference, request.terms_hash)
    if (tier == request.tier and request.tier_hash is not None
            and request.tier_hash != tier_fingerprint(policy, tier)):
        raise Rejected("tier_changed", f"The {tier} tier of {policy.dataset} changed since the "
                                       f"request was made; the team must re-confirm it.")
    return reviewer, policy, rules


def can_approve_at_tier(conn: sqlite3.Connection, settings: Settings, principal: Principal,
                        request: AccessRequest, tier: str) -> bool:
    """True when :func:`check_approve_at_tier` passes."""
    return _allowed(check_approve_at_tier, conn, settings, principal, request, tier)


def check_grant_directly(conn: sqlite3.Connection, principal: Principal,
                         team: sqlite3.Row | None) -> sqlite3.Row:
    """The staff row when the principal may grant ``team`` access without a request: active
    staff, an existing active team that is not their own. (What is granted is checked against
    the tier by :func:`check_request_meets_tier`.) Raises Denied (``staff_only``,
    ``user_suspended``, ``team_suspended``, ``own_team``), NotFound (``unknown_team``)."""
    staff = check_staff(conn, principal)
    if team is None:
        raise NotFound("unknown_team", "There is no team with that name.")
    if team["status"] != "active":
        raise Denied("team_suspended", "That team is suspended; reactivate it first.")
    if conn.execute("SELECT 1 FROM memberships WHERE user_id = ? AND team_id = ?",
                    (staff["id"], team["id"])).fetchone():
        raise Denied("own_team", "You cannot grant access to your own team.")
    return staff


def can_grant_directly(conn: sqlite3.Connection, principal: Principal,
                       team: sqlite3.Row | None) -> bool:
    """True when :func:`check_grant_directly` passes."""
    return _allowed(check_grant_directly, conn, principal, team)
