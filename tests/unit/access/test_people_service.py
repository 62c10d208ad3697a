import pytest

from portal import audit, authz
from portal.access import grants
from portal.errors import Denied, InvalidInput, NotFound, Rejected
from portal.identity import principal_from_row
from portal.services import people as svc
from portal.store import people as store
from tests.factories import make_user
from tests.factories_access import make_grant


@pytest.fixture
def staff(ctx):
    return make_user(ctx, "staff@platform.example", role="staff")


def test_onboard_team_creates_team_and_invited_members(ctx, staff):
    made = svc.onboard_team(ctx, staff, "delta-dx", "Delta Dx", ["Lead@Delta.example"])
    assert made == {"team": "delta-dx", "name": "Delta Dx", "status": "active",
                    "invited": ["lead@delta.example"]}
    row = store.get_user_by_email(ctx.conn, "lead@delta.example")
    assert row["status"] == "invited" and row["role"] == "member" and row["subject"] is None
    assert store.team_of_user(ctx.conn, row["id"])["slug"] == "delta-dx"
    actions = {e.action for e in audit.list_events(ctx.conn)}
    assert {"team.onboard", "member.invite"} <= actions


def test_onboard_existing_team_is_rejected_and_nothing_half_done(ctx, staff):
    svc.onboard_team(ctx, staff, "delta-dx", "Delta Dx")
    with pytest.raises(Rejected) as info:
        svc.onboard_team(ctx, staff, "delta-dx", "Again", ["new@delta.example"])
    assert info.value.code == "team_exists"
    assert store.get_user_by_email(ctx.conn, "new@delta.example") is None


@pytest.mark.parametrize("slug", ["", "A-Team", "x", "-bad", "a" * 41, "semi;colon"])
def test_onboard_team_with_bad_slug_is_invalid(ctx, staff, slug):
    with pytest.raises(InvalidInput) as info:
        svc.onboard_team(ctx, staff, slug, "Name")
    assert info.value.code == "invalid_team"


@pytest.mark.parametrize("email", ["", "no-at", "a@b", "<script>@x.example", "a b@x.example"])
def test_invite_with_bad_email_is_invalid(ctx, staff, email):
    svc.onboard_team(ctx, staff, "delta-dx", "Delta Dx")
    with pytest.raises(InvalidInput) as info:
        svc.invite_member(ctx, staff, "delta-dx", email)
    assert info.value.code == "invalid_email"


def test_invite_existing_user_is_rejected(ctx, staff):
    make_user(ctx, "a@acme.example", team="acme-health")
    with pytest.raises(Rejected) as info:
        svc.invite_member(ctx, staff, "acme-health", "a@acme.example")
    assert info.value.code == "user_exists"


def test_member_cannot_invite_and_refusal_is_audited(ctx):
    member = make_user(ctx, "a@acme.example", team="acme-health")
    with pytest.raises(Denied) as info:
        svc.invite_member(ctx, member, "acme-health", "friend@acme.example")
    assert info.value.code == "staff_only"
    event = audit.list_events(ctx.conn, action="member.invite")[0]
    assert event.decision == "denied" and event.reason == "staff_only"


def test_suspend_member_blocks_grant_and_reactivate_restores_it(ctx, staff):
    member = make_user(ctx, "a@acme.example", team="acme-health")
    ctx.conn.execute("UPDATE users SET subject = 's1', issuer = 'i' WHERE id = ?",
                     (member.user_id,))
    make_grant(ctx, "acme-health", "eunomia", "row-level")
    assert svc.suspend_member(ctx, staff, member.email, "Shared a password")["status"] \
        == "suspended"
    with pytest.raises(Denied) as info:
        grants.check_active_grant(ctx.conn, member, "eunomia")
    assert info.value.code == "user_suspended"
    assert svc.reactivate_member(ctx, staff, member.email)["status"] == "active"
    assert grants.can_use_dataset(ctx.conn, member, "eunomia")


def test_reactivating_a_never_signed_in_member_returns_them_to_invited(ctx, staff):
    svc.onboard_team(ctx, staff, "delta-dx", "Delta Dx", ["lead@delta.example"])
    svc.suspend_member(ctx, staff, "lead@delta.example", "Wrong person")
    assert svc.reactivate_member(ctx, staff, "lead@delta.example")["status"] == "invited"


def test_remove_member_is_final(ctx, staff):
    member = make_user(ctx, "a@acme.example", team="acme-health")
    svc.remove_member(ctx, staff, member.email, "Left the company")
    with pytest.raises(Denied) as info:
        svc.reactivate_member(ctx, staff, member.email)
    assert info.value.code == "invalid_transition"
    with pytest.raises(Denied) as info:
        grants.check_active_grant(ctx.conn, member, "eunomia")
    assert info.value.code == "not_a_member"


def test_suspend_without_reason_is_invalid(ctx, staff):
    member = make_user(ctx, "a@acme.example", team="acme-health")
    with pytest.raises(InvalidInput) as info:
        svc.suspend_member(ctx, staff, member.email, "")
    assert info.value.code == "reason_required"


def test_suspended_staff_account_is_refused_every_staff_action_until_reactivated(ctx, staff):
    other = make_user(ctx, "reviewer@platform.example", role="staff")
    store.bind_identity(ctx.conn, other.user_id, "https://idp.example", "reviewer")
    svc.suspend_member(ctx, staff, other.email, "left the data office")
    assert not authz.can_staff(ctx.conn, other)  # the principal object still says "staff"
    with pytest.raises(Denied) as info:
        svc.list_teams(ctx, other)
    assert info.value.code == "user_suspended"
    svc.reactivate_member(ctx, staff, other.email)
    assert authz.can_staff(ctx.conn, other)


def test_staff_cannot_suspend_their_own_account(ctx, staff):
    with pytest.raises(Denied) as info:
        svc.suspend_member(ctx, staff, staff.email, "x")
    assert info.value.code == "own_account"
    assert authz.can_staff(ctx.conn, staff)


def test_suspending_an_unknown_account_is_not_found(ctx, staff):
    with pytest.raises(NotFound) as info:
        svc.suspend_member(ctx, staff, "nobody@platform.example", "x")
    assert info.value.code == "unknown_member"


def test_suspend_team_refuses_every_member(ctx, staff):
    member = make_user(ctx, "a@acme.example", team="acme-health")
    make_grant(ctx, "acme-health", "eunomia", "row-level")
    svc.suspend_team(ctx, staff, "acme-health", "Contract paused")
    with pytest.raises(Denied) as info:
        grants.check_active_grant(ctx.conn, member, "eunomia")
    assert info.value.code == "team_suspended"
    svc.reactivate_team(ctx, staff, "acme-health")
    assert grants.can_use_dataset(ctx.conn, member, "eunomia")
    fresh = principal_from_row(ctx.conn, store.get_user_by_email(ctx.conn, member.email))
    assert fresh.role == "member" and fresh.status == "active"


def test_list_teams_shows_members_and_grants(ctx, staff):
    make_user(ctx, "a@acme.example", team="acme-health")
    make_grant(ctx, "acme-health", "eunomia", "row-level", days=20)
    teams = {t["team"]: t for t in svc.list_teams(ctx, staff)}
    assert [m["email"] for m in teams["acme-health"]["members"]] == ["a@acme.example"]
    assert teams["acme-health"]["grants"][0]["days_left"] == 20
