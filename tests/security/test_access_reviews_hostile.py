"""Separation of duties and grant management under hostile use: refused, coded, audited."""

import pytest

from portal.access import grants
from portal.errors import Denied, InvalidInput, NotFound, Rejected
from portal.services import access as svc
from tests.factories import make_user
from tests.factories_access import make_grant, policy_ctx, refused, submit


def test_member_cannot_approve_even_their_own_request(actx, who):
    made = submit(actx, who["acme"])
    refused(actx, lambda: svc.approve_request(actx, who["acme"], made["id"], days=10), Denied,
            "staff_only", "request.approve")
    assert not grants.can_use_dataset(actx.conn, who["acme"], "eunomia")


def test_member_cannot_deny_or_see_the_queue(actx, who):
    made = submit(actx, who["acme"])
    refused(actx, lambda: svc.deny_request(actx, who["gamma"], made["id"], "spite"), Denied,
            "staff_only", "request.deny")
    with pytest.raises(Denied):
        svc.review_queue(actx, who["acme"])


def test_requester_who_became_staff_cannot_approve_own_request(actx, who):
    made = submit(actx, who["acme"])
    actx.conn.execute("UPDATE users SET role = 'staff' WHERE id = ?", (who["acme"].user_id,))
    actx.conn.execute("DELETE FROM memberships WHERE user_id = ?", (who["acme"].user_id,))
    refused(actx, lambda: svc.approve_request(actx, who["acme"], made["id"], days=10), Denied,
            "own_request", "request.approve")


def test_staff_in_the_requesting_team_cannot_approve(actx, who):
    made = submit(actx, who["acme"])
    actx.conn.execute("INSERT INTO memberships (user_id, team_id, created_at) VALUES (?, ?, 'x')",
                      (who["staff"].user_id, who["acme"].team_id))
    refused(actx, lambda: svc.approve_request(actx, who["staff"], made["id"], days=10), Denied,
            "own_team", "request.approve")
    refused(actx, lambda: svc.grant_access(actx, who["staff"], "acme-health", "eunomia",
                                           "aggregate", 10), Denied, "own_team", "grant.create")


def test_same_staff_cannot_give_both_approvals(ctx, tmp_path):
    actx = policy_ctx(ctx, tmp_path / "two", row_level_approvals=2)
    member = make_user(actx, "a@acme.example", team="acme-health")
    staff = make_user(actx, "staff@platform.example", role="staff")
    made = submit(actx, member)
    svc.approve_request(actx, staff, made["id"], days=10)
    refused(actx, lambda: svc.approve_request(actx, staff, made["id"], days=10), Denied,
            "already_reviewed", "request.approve")
    assert not grants.can_use_dataset(actx.conn, member, "eunomia")


@pytest.mark.parametrize(("days", "error", "code"), [
    (91, Rejected, "duration_exceeds_policy"),
    (10_000_000, Rejected, "duration_exceeds_policy"),
    (0, InvalidInput, "invalid_duration"),
    (-5, InvalidInput, "invalid_duration"),
    ("30", InvalidInput, "invalid_duration"),
    (True, InvalidInput, "invalid_duration"),
    (2.5, InvalidInput, "invalid_duration"),
])
def test_approval_with_bad_duration_is_refused(actx, who, days, error, code):
    made = submit(actx, who["acme"])
    refused(actx, lambda: svc.approve_request(actx, who["staff"], made["id"], days=days),
            error, code, "request.approve")
    assert svc.list_requests(actx, who["acme"])[0]["status"] == "submitted"


def test_approval_with_unknown_tier_is_not_found(actx, who):
    made = submit(actx, who["acme"])
    refused(actx, lambda: svc.approve_request(actx, who["staff"], made["id"], days=10,
                                              tier="everything"),
            NotFound, "unknown_tier", "request.approve", hostile="everything")


def test_approving_a_decided_request_is_an_invalid_transition(actx, who):
    made = submit(actx, who["acme"])
    svc.deny_request(actx, who["staff"], made["id"], "no")
    refused(actx, lambda: svc.approve_request(actx, who["reviewer"], made["id"], days=10),
            Denied, "invalid_transition", "request.approve")


def test_deny_without_reason_is_invalid(actx, who):
    made = submit(actx, who["acme"])
    refused(actx, lambda: svc.deny_request(actx, who["staff"], made["id"], " \n "),
            InvalidInput, "reason_required", "request.deny")


def test_suspended_staff_cannot_approve(actx, who):
    made = submit(actx, who["acme"])
    actx.conn.execute("UPDATE users SET status = 'suspended' WHERE id = ?",
                      (who["staff"].user_id,))
    refused(actx, lambda: svc.approve_request(actx, who["staff"], made["id"], days=10), Denied,
            "user_suspended", "request.approve")


def test_member_cannot_grant_or_revoke(actx, who):
    grant = make_grant(actx, "acme-health", "eunomia", "row-level")
    refused(actx, lambda: svc.grant_access(actx, who["gamma"], "gamma-ai", "eunomia",
                                           "row-level", 10), Denied, "staff_only",
            "grant.create")
    refused(actx, lambda: svc.revoke_grant(actx, who["gamma"], grant.id, "spite"), Denied,
            "staff_only", "grant.revoke")
    assert grants.can_use_dataset(actx.conn, who["acme"], "eunomia")


@pytest.mark.parametrize("grant_id", [999, "1; DROP TABLE grants", None])
def test_revoking_unknown_grant_is_not_found(actx, who, grant_id):
    refused(actx, lambda: svc.revoke_grant(actx, who["staff"], grant_id, "x"), NotFound,
            "unknown_grant", "grant.revoke")


def test_revoking_an_expired_grant_is_an_invalid_transition(actx, who):
    grant = make_grant(actx, "acme-health", "eunomia", "row-level", status="expired")
    refused(actx, lambda: svc.revoke_grant(actx, who["staff"], grant.id, "x"), Denied,
            "invalid_transition", "grant.revoke")


def test_revoked_and_expired_grants_deny_with_their_codes(actx, who):
    make_grant(actx, "acme-health", "eunomia", "row-level", status="revoked", reason="misuse")
    make_grant(actx, "gamma-ai", "eunomia", "aggregate", days=-2)  # active, past expiry
    with pytest.raises(Denied) as info:
        grants.check_active_grant(actx.conn, who["acme"], "eunomia")
    assert info.value.code == "grant_revoked" and "misuse" in info.value.message
    with pytest.raises(Denied) as info:
        grants.check_active_grant(actx.conn, who["gamma"], "eunomia")
    assert info.value.code == "grant_expired"


def test_approving_a_request_of_a_suspended_team_is_denied(actx, who):
    made = submit(actx, who["acme"])
    actx.conn.execute("UPDATE teams SET status = 'suspended' WHERE slug = 'acme-health'")
    refused(actx, lambda: svc.approve_request(actx, who["staff"], made["id"], days=10), Denied,
            "team_suspended", "request.approve")
