"""Access use cases: requests, reviews, grants — called by the browser pages and the CLI.

Each function takes the Context and the acting Principal, re-reads who the principal is from the
store, performs its writes and their audit events in one transaction, and returns plain dicts.
A refused attempt (denied, rejected, not found, invalid) is rolled back and then audited with its
error code, so tampering (another team's request id, a member approving) leaves a trace.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from portal import audit, authz
from portal.access import grants, requests, reviews
from portal.access.policy import dataset_policy, terms_hash, tier_fingerprint, tier_policy
from portal.access.states import REQUEST_OPEN, REQUEST_STATES
from portal.errors import Denied, InvalidInput, NotFound, PortalError, Rejected
from portal.identity import Principal
from portal.services.attempts import attempt, ref, use_case
from portal.services.context import Context
from portal.store import people
from portal.store.db import transaction, utcnow

T = TypeVar("T")


def audited_attempt(ctx: Context, principal: Principal, action: str, target: str | None,
                    work: Callable[[], T], details: dict[str, Any] | None = None) -> T:
    """Run ``work`` in one write transaction as one attempt (``portal.services.attempts``):
    a refusal rolls the writes back and is audited with its error code and ``details``."""
    with attempt(lambda: ctx.conn, actor=principal.actor, team=principal.team, action=action,
                 target=target, details=details), transaction(ctx.conn):
        return work()


# --- requests -------------------------------------------------------------------------------
@use_case("request.submit",
          details=lambda a: {"dataset": ref(a["dataset_id"]), "tier": ref(a["tier"])})
def submit_request(ctx: Context, principal: Principal, dataset_id: str, tier: str,
                   purpose: str, agreed_terms: bool,
                   ethics_reference: str | None = None) -> dict[str, Any]:
    """A team member requests a dataset tier. The purpose is stored verbatim (rendering is the
    UI's job). Raises Denied (``staff_cannot_request``, ``not_a_member``, ``user_suspended``,
    ``team_suspended``), NotFound (``unknown_dataset``, ``unknown_tier``), InvalidInput (see
    :func:`portal.access.requests.validate_submission`), Rejected (``duplicate_request``)."""

    def work() -> dict[str, Any]:
        user, team = authz.check_member(ctx.conn, principal, staff_code="staff_cannot_request")
        policy, rules = tier_policy(ctx.settings, dataset_id, tier)
        requests.validate_submission(rules, purpose, agreed_terms, ethics_reference)
        made = requests.insert(
            ctx.conn, team_id=team["id"], requested_by=user["id"], dataset_id=policy.dataset,
            tier=tier, purpose=purpose, agreed_terms=agreed_terms,
            terms_hash=terms_hash(policy) if agreed_terms else None,
            ethics_reference=ethics_reference, approvals_required=rules.approvals_required,
            tier_hash=tier_fingerprint(policy, tier))
        audit.record(ctx.conn, actor=principal.actor, team=made.team, action="request.submit",
                     target=f"request:{made.id}", decision="done",
                     details={"dataset": made.dataset_id, "tier": tier,
                              "approvals_required": made.approvals_required})
        return made.to_dict()

    return audited_attempt(ctx, principal, "request.submit", None, work,
                    {"dataset": ref(dataset_id), "tier": ref(tier)})


@use_case("request.withdraw", "request:{request_id}")
def withdraw_request(ctx: Context, principal: Principal, request_id: int) -> dict[str, Any]:
    """A member withdraws an open request of their own team. Raises NotFound, Denied
    (``not_your_request``, ``invalid_transition``, membership codes)."""
    return audited_attempt(ctx, principal, "request.withdraw", f"request:{ref(request_id)}",
                    lambda: reviews.withdraw(ctx.conn, principal, request_id).to_dict())


@use_case("request.reconfirm", "request:{request_id}")
def reconfirm_request(ctx: Context, principal: Principal, request_id: int,
                      agreed_terms: bool) -> dict[str, Any]:
    """A member re-confirms their team's open request under the tier and terms as they read now
    (needed when approval was refused with ``terms_changed`` or ``tier_changed``). Raises as
    :func:`portal.access.reviews.reconfirm`."""
    return audited_attempt(ctx, principal, "request.reconfirm", f"request:{ref(request_id)}",
                           lambda: reviews.reconfirm(ctx.conn, ctx.settings, principal,
                                                     request_id, agreed_terms).to_dict())


@use_case("request.view", "request:{request_id}")
def get_request(ctx: Context, principal: Principal, request_id: int) -> dict[str, Any]:
    """One request: staff see any (with the team's history); members only their team's.
    Raises NotFound, Denied (``not_your_request``, membership codes); refusals are audited."""

    def work() -> dict[str, Any]:
        found = requests.get(ctx.conn, request_id)
        if authz.can_staff(ctx.conn, principal):
            return _with_history(ctx, found.to_dict())
        _, team = authz.check_member(ctx.conn, principal)
        if team["id"] != found.team_id:
            raise Denied("not_your_request", "This request belongs to another team.")
        return found.to_dict()

    return audited_attempt(ctx, principal, "request.view", f"request:{ref(request_id)}", work)


def _check_status(status: str | None) -> tuple[str, ...] | None:
    if status is None:
        return None
    if status == "open":
        return tuple(sorted(REQUEST_OPEN))
    if status not in REQUEST_STATES:
        raise InvalidInput("unknown_status", f"Request states are: open, "
                                             f"{', '.join(REQUEST_STATES)}.")
    return (status,)


@use_case("request.list")
def list_requests(ctx: Context, principal: Principal,
                  status: str | None = None) -> list[dict[str, Any]]:
    """Requests newest first. Members see their own team's; staff see all, each with the
    team's history. ``status``: a request state or ``open``. Raises Denied, InvalidInput."""
    statuses = _check_status(status)
    if authz.can_staff(ctx.conn, principal):
        found = requests.list_requests(ctx.conn, statuses=statuses)
        return [_with_history(ctx, r.to_dict()) for r in found]
    _, team = authz.check_member(ctx.conn, principal)
    return [r.to_dict() for r in requests.list_requests(ctx.conn, team_id=team["id"],
                                                        statuses=statuses)]


@use_case("request.list", actor="cli-operator")
def list_requests_for_operator(ctx: Context, status: str | None = None) -> list[dict[str, Any]]:
    """Every request, for the `portal access requests` command run on the server itself
    (whoever runs it can already read the store file). Not for pages."""
    found = requests.list_requests(ctx.conn, statuses=_check_status(status))
    return [_with_history(ctx, r.to_dict()) for r in found]


def _with_history(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Add the team's other requests and its grants (what a reviewer wants to see)."""
    others = [r for r in requests.list_requests(ctx.conn, team_id=data["team_id"])
              if r.id != data["id"]]
    team_grants = grants.list_grants(ctx.conn, team_id=data["team_id"])
    data["team_history"] = {
        "requests": [{"id": r.id, "dataset_id": r.dataset_id, "tier": r.tier,
                      "status": r.status, "created_at": r.created_at} for r in others],
        "grants": [{"id": g.id, "dataset_id": g.dataset_id, "tier": g.tier,
                    "status": g.effective_status(), "expires_at": g.expires_at,
                    "revoked_reason": g.revoked_reason} for g in team_grants],
    }
    return data


def _tier_choices(ctx: Context, dataset_id: str) -> dict[str, dict[str, int]]:
    try:
        policy = dataset_policy(ctx.settings, dataset_id)
    except NotFound:
        return {}
    return {name: {"max_grant_days": t.max_grant_days,
                   "approvals_required": t.approvals_required}
            for name, t in policy.tiers.items()}


@use_case("request.queue")
def review_queue(ctx: Context, principal: Principal) -> list[dict[str, Any]]:
    """Open requests, oldest first, for staff: each with the team's history, the dataset's tiers
    (longest grant, approvals required), and whether this reviewer may decide it
    (``can_review``, and ``review_blocked_by``: the Denied code when not). Raises Denied."""
    authz.check_staff(ctx.conn, principal)
    queue = []
    for found in requests.list_requests(ctx.conn, statuses=tuple(sorted(REQUEST_OPEN)),
                                        oldest_first=True):
        data = _with_history(ctx, found.to_dict())
        try:
            authz.check_review(ctx.conn, principal, found)
            data["can_review"], data["review_blocked_by"] = True, None
        except Denied as exc:
            data["can_review"], data["review_blocked_by"] = False, exc.code
        data["tiers"] = _tier_choices(ctx, found.dataset_id)
        queue.append(data)
    return queue


@use_case("request.approve", "request:{request_id}")
def approve_request(ctx: Context, principal: Principal, request_id: int, days: int,
                    tier: str | None = None, conditions: str = "",
                    now: datetime | None = None) -> dict[str, Any]:
    """Staff approve a request (see :func:`portal.access.reviews.approve` for the rules and
    error codes). The grant, the request's transition and their audit events commit together."""
    return audited_attempt(ctx, principal, "request.approve", f"request:{ref(request_id)}",
                    lambda: reviews.approve(ctx.conn, ctx.settings, principal, request_id, days,
                                            tier, conditions, now).to_dict(),
                    {"days": ref(days), "tier": ref(tier)})


@use_case("request.deny", "request:{request_id}")
def deny_request(ctx: Context, principal: Principal, request_id: int,
                 reason: str) -> dict[str, Any]:
    """Staff deny a request with a reason (see :func:`portal.access.reviews.deny`)."""
    return audited_attempt(ctx, principal, "request.deny", f"request:{ref(request_id)}",
                    lambda: reviews.deny(ctx.conn, principal, request_id, reason).to_dict())


# --- grants ---------------------------------------------------------------------------------
@use_case("grant.create",
          details=lambda a: {"team": ref(a["team"]), "dataset": ref(a["dataset_id"]),
                             "tier": ref(a["tier"])})
def grant_access(ctx: Context, principal: Principal, team: str, dataset_id: str, tier: str,
                 days: int, purpose: str = "", conditions: str = "",
                 now: datetime | None = None, *, terms_agreed: bool = False,
                 ethics_reference: str | None = None) -> dict[str, Any]:
    """Staff grant a team a tier directly (without a request). Supersedes the team's active
    grant for the dataset. What is granted meets the tier's request requirements like a request
    would: the purpose (its length), the ethics reference when the tier requires one, and —
    when the tier requires agreement to the dataset's terms — ``terms_agreed``, staff's
    statement that the team agreed to the terms as they read now (outside the portal).
    Raises Denied (``staff_only``, ``own_team``, ``team_suspended``), NotFound
    (``unknown_team``, ``unknown_dataset``, ``unknown_tier``), InvalidInput, Rejected
    (``duration_exceeds_policy``, ``two_approvals_required``: such tiers go through a request
    so that two staff decide; the tier's requirement codes, see
    :func:`portal.authz.check_request_meets_tier`)."""

    def work() -> dict[str, Any]:
        row = people.get_team(ctx.conn, str(team))
        staff = authz.check_grant_directly(ctx.conn, principal, row)
        policy, rules = tier_policy(ctx.settings, dataset_id, tier)
        duration = reviews.check_days(days, rules.max_grant_days)
        if rules.approvals_required > 1:
            raise Rejected("two_approvals_required",
                           f"The {tier} tier needs {rules.approvals_required} approvals from "
                           f"different staff; the team must submit a request.")
        text = reviews.clean_text(purpose, "invalid_purpose", "the purpose", 4000, False)
        authz.check_request_meets_tier(
            policy, tier, rules, text, terms_agreed, ethics_reference,
            terms_hash(policy) if terms_agreed else None)
        made = grants.create_grant(
            ctx.conn, actor=principal.actor, team_id=row["id"], dataset_id=policy.dataset,
            tier=tier, purpose=text, approved_by=staff["id"],
            days=duration, conditions=(conditions or "").strip(), now=now)
        return made.to_dict(now)

    return audited_attempt(ctx, principal, "grant.create", None, work,
                    {"team": ref(team), "dataset": ref(dataset_id), "tier": ref(tier)})


@use_case("grant.revoke", "grant:{grant_id}")
def revoke_grant(ctx: Context, principal: Principal, grant_id: int,
                 reason: str) -> dict[str, Any]:
    """Staff revoke a grant with a reason; the team's next query is refused with it. Raises
    Denied (``staff_only``, ``invalid_transition``), NotFound (``unknown_grant``), InvalidInput
    (``reason_required``)."""

    def work() -> dict[str, Any]:
        staff = authz.check_staff(ctx.conn, principal)
        text = reviews.clean_text(reason, "reason_required", "a reason", reviews.REASON_MAX_CHARS,
                             True)
        try:
            key = int(grant_id)
        except (TypeError, ValueError):
            raise NotFound("unknown_grant", "There is no such grant.") from None
        revoked = grants.revoke(ctx.conn, actor=principal.actor, grant_id=key,
                                revoked_by=staff["id"], reason=text)
        access_ended(ctx.conn, actor=principal.actor, team=revoked.team,
                     dataset_id=revoked.dataset_id, reason="grant_revoked")
        return revoked.to_dict()

    return audited_attempt(ctx, principal, "grant.revoke", f"grant:{ref(grant_id)}", work)


def _extract_path(ctx: Context, grant: grants.Grant) -> str | None:
    """Where the governed extract of an active grant lives (content-addressed by release and
    resolved tier; it may not be built until the first query), for staff. None for grants that
    are not active, or while the dataset has no current release or a valid policy."""
    if grant.effective_status() != "active":
        return None
    from portal.query.extracts import extract_path  # the query area builds extracts
    from portal.services.policies import resolved_tier

    try:
        _, resolved = resolved_tier(ctx, grant.dataset_id, grant.tier)
    except PortalError:
        return None
    return str(extract_path(ctx.settings, resolved))


def _grant_rows(ctx: Context, found: list[grants.Grant], bucket: str | None, staff: bool,
                now: datetime | None) -> list[dict[str, Any]]:
    if bucket is not None and bucket not in grants.BUCKETS:
        raise InvalidInput("unknown_bucket", f"Grant lists are: {', '.join(grants.BUCKETS)}.")
    rows = []
    for grant in found:
        if bucket is not None and grant.bucket(now) != bucket:
            continue
        data = grant.to_dict(now)
        if staff:
            data["extract_path"] = _extract_path(ctx, grant)
        rows.append(data)
    return rows


@use_case("grant.list")
def list_grants(ctx: Context, principal: Principal, bucket: str | None = None,
                now: datetime | None = None) -> list[dict[str, Any]]:
    """Grants newest first, each with ``days_left``, ``effective_status`` and ``bucket``
    (active, expiring_soon (≤ 14 days), expired, revoked). Staff see all; members their team's.
    Raises Denied, InvalidInput (``unknown_bucket``)."""
    if authz.can_staff(ctx.conn, principal):
        return _grant_rows(ctx, grants.list_grants(ctx.conn), bucket, True, now)
    _, team = authz.check_member(ctx.conn, principal)
    return _grant_rows(ctx, grants.list_grants(ctx.conn, team_id=team["id"]), bucket, False,
                       now)


@use_case("grant.list", actor="cli-operator")
def list_grants_for_operator(ctx: Context, bucket: str | None = None) -> list[dict[str, Any]]:
    """Every grant, for the `portal access list` command run on the server itself (whoever runs
    it can already read the store file). Not for pages."""
    return _grant_rows(ctx, grants.list_grants(ctx.conn), bucket, True, None)


@use_case("grant.expire")
def expire_grants(ctx: Context, now: datetime | None = None) -> list[int]:
    """Record every active grant past its expiry as expired (audited, actor ``system``) and end
    the queued work that depended on each (:func:`access_ended`). Idempotent; expiry is
    enforced at check time (queries, worker claims and stores, report reads and releases)
    whether or not this has run."""
    with transaction(ctx.conn):
        marked = grants.expire_due(ctx.conn, now=now)
        for grant_id in marked:
            grant = grants.get_grant(ctx.conn, grant_id)
            access_ended(ctx.conn, actor="system", team=grant.team, dataset_id=grant.dataset_id,
                         reason="grant_expired")
    return marked


PENDING_RUN_STATES = ("queued", "awaiting_review")


def access_ended(conn: Any, *, actor: str, team: str, reason: str,
                 dataset_id: str | None = None, member: str | None = None) -> dict[str, list[int]]:
    """The one hook for "this team (or member) may no longer use this dataset (or anything)":
    called by revocation, expiry, and member and team suspension or removal, inside their
    transaction. Queued validation runs that depended on that access are cancelled (``failed``,
    outcome ``access_ended``: never scored) and unreleased reports (``awaiting_review``) are
    withheld with the reason, so staff cannot release them by mistake either; one
    ``sandbox.run.cancel`` event each. ``dataset_id``: only runs of tasks that need that
    dataset's grant (None: every pending run of the team); ``member``: only runs that member
    submitted. Runs already executing are refused by the worker before their result is stored
    (:func:`portal.authz.check_run_access`), and report reads re-check the grant, so this hook
    is prompt clean-up, not the only guard. Returns {"cancelled": [...], "withheld": [...]}."""
    from sandbox import store as runs

    done: dict[str, list[int]] = {"cancelled": [], "withheld": []}
    marks = ", ".join("?" for _ in PENDING_RUN_STATES)
    params: list[Any] = [team, *PENDING_RUN_STATES]
    clause = ""
    if member is not None:
        clause, params = " AND requested_by = ?", [*params, member]
    rows = conn.execute(f"SELECT id, status, task_id, task_version FROM sandbox_runs WHERE"
                        f" team = ? AND status IN ({marks}){clause} ORDER BY id",
                        params).fetchall()
    text = f"Access ended ({reason}) before the results were released."
    for row in rows:
        if dataset_id is not None:
            card = runs.task_version(conn, row["task_id"], row["task_version"])
            if not card.grant_required or card.dataset != dataset_id:
                continue
        if row["status"] == "queued":
            runs.set_status(conn, row["id"], "failed", outcome="access_ended",
                            message=f"Not scored: {text}", finished_at=utcnow())
            done["cancelled"].append(int(row["id"]))
        else:
            runs.set_status(conn, row["id"], "withheld", review_reason=text,
                            reviewed_by=actor, reviewed_at=utcnow())
            done["withheld"].append(int(row["id"]))
        audit.record(conn, actor=actor, team=team, action="sandbox.run.cancel",
                     target=f"run:{row['id']}", decision="done", reason=reason,
                     details={"from": row["status"], "dataset": dataset_id,
                              "member": member is not None})
    return done


@use_case("team.overview")
def team_overview(ctx: Context, principal: Principal,
                  now: datetime | None = None) -> dict[str, Any]:
    """A member's Home page: the team, its active grants with days left, its open requests.
    Raises Denied (membership codes)."""
    _, team = authz.check_member(ctx.conn, principal)
    active = [g.to_dict(now) for g in grants.list_grants(ctx.conn, team_id=team["id"])
              if g.effective_status(now) == "active"]
    open_requests = [r.to_dict() for r in requests.list_requests(
        ctx.conn, team_id=team["id"], statuses=tuple(sorted(REQUEST_OPEN)))]
    return {"team": team["slug"], "team_name": team["name"], "grants": active,
            "open_requests": open_requests}


# --- demo -----------------------------------------------------------------------------------
DEMO_GRANTS = (("acme-health", "eunomia", "row-level"), ("beta-bio", "eunomia", "aggregate"))
DEMO_APPROVER = "staff@platform.example"
DEMO_PURPOSE = "Demo grant: exploring the dataset during the accelerator programme."


def seed_demo_grants(ctx: Context) -> dict[str, Any]:
    """Demo grants: ``acme-health`` gets ``row-level`` of eunomia, ``beta-bio`` ``aggregate``,
    ``gamma-ai`` nothing. Idempotent, and seeds once: a team that has ever held a grant for the
    dataset is left alone (so a grant staff revoked is not restored by the next seed).
    Days are the tier's maximum, capped at a year. Audited with actor ``system``."""
    created, skipped = [], []
    with transaction(ctx.conn):
        approver = people.get_user_by_email(ctx.conn, DEMO_APPROVER)
        for team_slug, dataset_id, tier in DEMO_GRANTS:
            team = people.get_team(ctx.conn, team_slug)
            if approver is None or team is None:
                skipped.append(f"{team_slug}: demo people not seeded")
                continue
            if grants.latest_grant(ctx.conn, team["id"], dataset_id) is not None:
                continue
            try:
                policy, rules = tier_policy(ctx.settings, dataset_id, tier)
            except NotFound:
                skipped.append(f"{team_slug}: no access policy for {dataset_id} {tier}")
                continue
            made = grants.create_grant(
                ctx.conn, actor="system", team_id=team["id"], dataset_id=policy.dataset,
                tier=tier, purpose=DEMO_PURPOSE, approved_by=approver["id"],
                days=min(rules.max_grant_days, 365))
            created.append(f"{team_slug}: {dataset_id} {tier} (grant {made.id})")
    return {"created": created, "skipped": skipped}
