import pytest

from portal import audit
from portal.access import grants
from portal.errors import Denied, InvalidInput, NotFound, Rejected
from portal.services import access as svc
from tests.factories import make_user
from tests.factories_access import DIRECT_GRANT, PURPOSE, policy_ctx


@pytest.fixture
def actx(ctx, tmp_path):
    return policy_ctx(ctx, tmp_path / "policies")


@pytest.fixture
def people(actx):
    return {
        "acme": make_user(actx, "analyst@acme-health.example", team="acme-health"),
        "acme2": make_user(actx, "second@acme-health.example", team="acme-health"),
        "gamma": make_user(actx, "founder@gamma-ai.example", team="gamma-ai"),
        "staff": make_user(actx, "staff@platform.example", role="staff"),
        "reviewer": make_user(actx, "reviewer@platform.example", role="staff"),
    }


def _submit(actx, who, tier="row-level", **kw):
    args = {"purpose": PURPOSE, "agreed_terms": True} | kw
    return svc.submit_request(actx, who, "eunomia", tier, **args)


def test_submit_request_by_member_is_submitted_and_audited(actx, people):
    made = _submit(actx, people["gamma"])
    assert made["status"] == "submitted" and made["team"] == "gamma-ai"
    assert made["approvals_required"] == 1 and made["agreed_terms"] is True
    events = audit.list_events(actx.conn, action="request.submit")
    assert events[0].decision == "done" and events[0].target == f"request:{made['id']}"


def test_approve_request_creates_grant_and_member_can_use_dataset(actx, people):
    made = _submit(actx, people["gamma"])
    done = svc.approve_request(actx, people["staff"], made["id"], days=30,
                               conditions="No linkage with other data.")
    assert done["status"] == "approved" and done["grant_id"]
    grant = grants.check_active_grant(actx.conn, people["gamma"], "eunomia")
    assert grant.id == done["grant_id"] and grant.tier == "row-level"
    assert grant.conditions == "No linkage with other data." and grant.request_id == made["id"]
    assert grant.approved_by == "staff@platform.example"
    actions = [e.action for e in audit.list_events(actx.conn, decision="done")]
    assert "grant.create" in actions and "request.approve" in actions


def test_approve_request_with_another_tier_grants_that_tier(actx, people):
    made = _submit(actx, people["gamma"])
    svc.approve_request(actx, people["staff"], made["id"], days=30, tier="aggregate")
    assert grants.check_active_grant(actx.conn, people["gamma"], "eunomia").tier == "aggregate"


def test_deny_request_records_reason(actx, people):
    made = _submit(actx, people["gamma"])
    done = svc.deny_request(actx, people["staff"], made["id"], "Purpose too vague.")
    assert done["status"] == "denied" and done["decision_reason"] == "Purpose too vague."
    with pytest.raises(Denied) as info:
        grants.check_active_grant(actx.conn, people["gamma"], "eunomia")
    assert info.value.code == "no_grant"


def test_withdraw_request_by_teammate_is_withdrawn(actx, people):
    made = _submit(actx, people["acme"])
    assert svc.withdraw_request(actx, people["acme2"], made["id"])["status"] == "withdrawn"


def test_withdrawn_request_cannot_be_approved(actx, people):
    made = _submit(actx, people["acme"])
    svc.withdraw_request(actx, people["acme"], made["id"])
    with pytest.raises(Denied) as info:
        svc.approve_request(actx, people["staff"], made["id"], days=10)
    assert info.value.code == "invalid_transition"


def test_duplicate_open_request_is_rejected_but_other_tier_is_fine(actx, people):
    _submit(actx, people["acme"])
    with pytest.raises(Rejected) as info:
        _submit(actx, people["acme2"])
    assert info.value.code == "duplicate_request"
    assert _submit(actx, people["acme"], tier="aggregate")["status"] == "submitted"


def test_request_again_after_denial_is_allowed(actx, people):
    made = _submit(actx, people["acme"])
    svc.deny_request(actx, people["staff"], made["id"], "Not yet.")
    assert _submit(actx, people["acme"])["status"] == "submitted"


def test_two_approval_tier_waits_for_second_staff(ctx, tmp_path):
    actx = policy_ctx(ctx, tmp_path / "p2", row_level_approvals=2)
    member = make_user(actx, "a@acme.example", team="acme-health")
    staff = make_user(actx, "staff@platform.example", role="staff")
    reviewer = make_user(actx, "reviewer@platform.example", role="staff")
    made = _submit(actx, member)
    assert made["approvals_required"] == 2
    first = svc.approve_request(actx, staff, made["id"], days=60, conditions="A")
    assert first["status"] == "awaiting_second_approval" and first["grant_id"] is None
    assert not grants.can_use_dataset(actx.conn, member, "eunomia")
    with pytest.raises(Denied) as info:
        svc.approve_request(actx, staff, made["id"], days=60)
    assert info.value.code == "already_reviewed"
    second = svc.approve_request(actx, reviewer, made["id"], days=30, conditions="B")
    assert second["status"] == "approved"
    grant = grants.check_active_grant(actx.conn, member, "eunomia")
    assert grant.conditions == "A\nB"
    assert grant.days_left() in (29, 30)  # the shorter duration wins


def test_second_approval_with_different_tier_is_rejected(ctx, tmp_path):
    actx = policy_ctx(ctx, tmp_path / "p2", row_level_approvals=2)
    member = make_user(actx, "a@acme.example", team="acme-health")
    staff = make_user(actx, "staff@platform.example", role="staff")
    reviewer = make_user(actx, "reviewer@platform.example", role="staff")
    made = _submit(actx, member)
    svc.approve_request(actx, staff, made["id"], days=60)
    with pytest.raises(Rejected) as info:
        svc.approve_request(actx, reviewer, made["id"], days=60, tier="aggregate")
    assert info.value.code == "tier_differs_from_first_approval"


def test_direct_grant_of_two_approval_tier_is_rejected(ctx, tmp_path):
    actx = policy_ctx(ctx, tmp_path / "p2", row_level_approvals=2)
    make_user(actx, "a@acme.example", team="acme-health")
    staff = make_user(actx, "staff@platform.example", role="staff")
    with pytest.raises(Rejected) as info:
        svc.grant_access(actx, staff, "acme-health", "eunomia", "row-level", 30, "x")
    assert info.value.code == "two_approvals_required"


def test_grant_access_and_revoke_by_staff(actx, people):
    made = svc.grant_access(actx, people["staff"], "acme-health", "eunomia", "aggregate", 30,
                            **DIRECT_GRANT)
    assert made["status"] == "active" and made["days_left"] == 30
    revoked = svc.revoke_grant(actx, people["reviewer"], made["id"], "Project ended")
    assert revoked["status"] == "revoked" and revoked["revoked_reason"] == "Project ended"
    with pytest.raises(Denied) as info:
        grants.check_active_grant(actx.conn, people["acme"], "eunomia")
    assert info.value.code == "grant_revoked" and "Project ended" in info.value.message


def test_grant_access_to_unknown_team_is_not_found(actx, people):
    with pytest.raises(NotFound) as info:
        svc.grant_access(actx, people["staff"], "nobody", "eunomia", "aggregate", 30,
                         **DIRECT_GRANT)
    assert info.value.code == "unknown_team"


def test_revoke_without_reason_is_invalid(actx, people):
    made = svc.grant_access(actx, people["staff"], "acme-health", "eunomia", "aggregate", 30,
                            **DIRECT_GRANT)
    with pytest.raises(InvalidInput) as info:
        svc.revoke_grant(actx, people["staff"], made["id"], "   ")
    assert info.value.code == "reason_required"


def test_list_requests_members_see_only_their_team_staff_see_all_with_history(actx, people):
    a = _submit(actx, people["acme"])
    _submit(actx, people["gamma"])
    mine = svc.list_requests(actx, people["acme2"])
    assert [r["id"] for r in mine] == [a["id"]] and "team_history" not in mine[0]
    everything = svc.list_requests(actx, people["staff"])
    assert len(everything) == 2 and "team_history" in everything[0]
    assert svc.list_requests(actx, people["staff"], status="open")
    with pytest.raises(InvalidInput):
        svc.list_requests(actx, people["staff"], status="bogus")


def test_review_queue_marks_requests_the_reviewer_may_not_decide(actx, people):
    made = _submit(actx, people["acme"])
    actx.conn.execute("INSERT INTO memberships (user_id, team_id, created_at)"
                      " SELECT ?, team_id, 'now' FROM memberships WHERE user_id = ?",
                      (people["reviewer"].user_id, people["acme"].user_id))
    queue = svc.review_queue(actx, people["reviewer"])
    assert queue[0]["id"] == made["id"]
    assert queue[0]["can_review"] is False and queue[0]["review_blocked_by"] == "own_team"
    assert queue[0]["tiers"]["row-level"]["max_grant_days"] == 90
    assert svc.review_queue(actx, people["staff"])[0]["can_review"] is True


def test_team_overview_shows_active_grants_and_open_requests(actx, people):
    svc.grant_access(actx, people["staff"], "acme-health", "eunomia", "aggregate", 20,
                     **DIRECT_GRANT)
    _submit(actx, people["acme"])
    home = svc.team_overview(actx, people["acme"])
    assert home["team"] == "acme-health"
    assert [g["tier"] for g in home["grants"]] == ["aggregate"]
    assert home["grants"][0]["days_left"] == 20
    assert [r["tier"] for r in home["open_requests"]] == ["row-level"]


def test_list_grants_buckets(actx, people):
    svc.grant_access(actx, people["staff"], "acme-health", "eunomia", "aggregate", 10,
                     **DIRECT_GRANT)
    svc.grant_access(actx, people["staff"], "gamma-ai", "eunomia", "aggregate", 100,
                     **DIRECT_GRANT)
    soon = svc.list_grants(actx, people["staff"], bucket="expiring_soon")
    assert [g["team"] for g in soon] == ["acme-health"]
    assert [g["team"] for g in svc.list_grants(actx, people["gamma"])] == ["gamma-ai"]
    assert "extract_path" not in svc.list_grants(actx, people["gamma"])[0]
    assert "extract_path" in svc.list_grants(actx, people["staff"])[0]
