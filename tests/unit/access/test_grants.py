from datetime import UTC, datetime, timedelta

import pytest

from portal import audit
from portal.access import grants
from portal.errors import Denied, NotFound
from portal.store.db import transaction
from tests.factories import make_team, make_user
from tests.factories_access import make_grant

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _denied_code(ctx, principal, dataset="eunomia", now=NOW):
    with pytest.raises(Denied) as info:
        grants.check_active_grant(ctx.conn, principal, dataset, now=now)
    assert not grants.can_use_dataset(ctx.conn, principal, dataset, now=now)
    return info.value


def test_check_active_grant_returns_the_teams_grant(ctx):
    member = make_user(ctx, "a@acme.example", team="acme-health")
    made = make_grant(ctx, "acme-health", "eunomia", "row-level", days=30, now=NOW)
    grant = grants.check_active_grant(ctx.conn, member, "eunomia", now=NOW)
    assert grant.id == made.id and grant.team == "acme-health" and grant.tier == "row-level"
    assert grant.approved_by == "staff@platform.example"
    assert grant.days_left(NOW) == 30
    assert grants.can_use_dataset(ctx.conn, member, "eunomia", now=NOW)


def test_check_active_grant_without_grant_is_denied_no_grant(ctx):
    member = make_user(ctx, "a@gamma.example", team="gamma-ai")
    make_grant(ctx, "acme-health", "eunomia", "row-level", now=NOW)  # another team's grant
    assert _denied_code(ctx, member).code == "no_grant"


def test_check_active_grant_for_staff_is_denied_not_a_member(ctx):
    staff = make_user(ctx, "staff@platform.example", role="staff")
    assert _denied_code(ctx, staff).code == "not_a_member"


def test_check_active_grant_for_unaffiliated_member_is_denied_not_a_member(ctx):
    loner = make_user(ctx, "loner@x.example")
    assert _denied_code(ctx, loner).code == "not_a_member"


def test_check_active_grant_for_suspended_user_is_denied_even_with_stale_principal(ctx):
    member = make_user(ctx, "a@acme.example", team="acme-health")
    make_grant(ctx, "acme-health", "eunomia", "row-level", now=NOW)
    ctx.conn.execute("UPDATE users SET status = 'suspended' WHERE id = ?", (member.user_id,))
    assert _denied_code(ctx, member).code == "user_suspended"


def test_check_active_grant_for_suspended_team_is_denied_team_suspended(ctx):
    member = make_user(ctx, "a@acme.example", team="acme-health")
    make_grant(ctx, "acme-health", "eunomia", "row-level", now=NOW)
    ctx.conn.execute("UPDATE teams SET status = 'suspended' WHERE slug = 'acme-health'")
    assert _denied_code(ctx, member).code == "team_suspended"


def test_check_active_grant_past_expiry_is_denied_and_marked_expired(ctx):
    member = make_user(ctx, "a@acme.example", team="acme-health")
    made = make_grant(ctx, "acme-health", "eunomia", "row-level", days=30, now=NOW)
    later = NOW + timedelta(days=31)
    error = _denied_code(ctx, member, now=later)
    assert error.code == "grant_expired"
    assert error.message == "Your team's access to eunomia expired on 2026-12-28"
    assert grants.get_grant(ctx.conn, made.id).status == "expired"
    events = audit.list_events(ctx.conn, action="grant.expire")
    assert [e.target for e in events] == [f"grant:{made.id}"]


def test_check_active_grant_expired_grant_is_denied_grant_expired(ctx):
    member = make_user(ctx, "a@acme.example", team="acme-health")
    make_grant(ctx, "acme-health", "eunomia", "row-level", days=3, status="expired", now=NOW)
    assert _denied_code(ctx, member).code == "grant_expired"


def test_check_active_grant_revoked_grant_is_denied_with_reason(ctx):
    member = make_user(ctx, "a@acme.example", team="acme-health")
    make_grant(ctx, "acme-health", "eunomia", "row-level", status="revoked",
               reason="terms breached", now=NOW)
    error = _denied_code(ctx, member)
    assert error.code == "grant_revoked"
    assert "terms breached" in error.message


def test_new_grant_supersedes_the_active_one(ctx):
    member = make_user(ctx, "a@acme.example", team="acme-health")
    first = make_grant(ctx, "acme-health", "eunomia", "aggregate", now=NOW)
    second = make_grant(ctx, "acme-health", "eunomia", "row-level", now=NOW)
    old = grants.get_grant(ctx.conn, first.id)
    assert old.status == "revoked" and old.superseded_by == second.id
    assert old.revoked_reason == f"superseded by grant {second.id}"
    assert grants.check_active_grant(ctx.conn, member, "eunomia", now=NOW).id == second.id
    actions = [e.action for e in audit.list_events(ctx.conn)]
    assert actions.count("grant.supersede") == 1 and actions.count("grant.create") == 2


def test_revoke_twice_is_an_invalid_transition(ctx):
    staff = make_user(ctx, "staff@platform.example", role="staff")
    made = make_grant(ctx, "acme-health", "eunomia", "row-level", status="revoked", now=NOW)
    with pytest.raises(Denied) as info, transaction(ctx.conn):
        grants.revoke(ctx.conn, actor=staff.email, grant_id=made.id, revoked_by=staff.user_id,
                      reason="again")
    assert info.value.code == "invalid_transition"


def test_get_unknown_grant_is_not_found(ctx):
    with pytest.raises(NotFound):
        grants.get_grant(ctx.conn, 999)


def test_expire_due_is_idempotent_and_audited_once(ctx):
    make_team(ctx, "acme-health")
    made = make_grant(ctx, "acme-health", "eunomia", "row-level", days=5, now=NOW)
    later = NOW + timedelta(days=6)
    assert grants.expire_due(ctx.conn, now=later) == [made.id]
    assert grants.expire_due(ctx.conn, now=later) == []
    assert len(audit.list_events(ctx.conn, action="grant.expire")) == 1


def test_grant_buckets_and_days_left(ctx):
    soon = make_grant(ctx, "acme-health", "eunomia", "row-level", days=10, now=NOW)
    far = make_grant(ctx, "beta-bio", "eunomia", "aggregate", days=60, now=NOW)
    assert soon.bucket(NOW) == "expiring_soon" and soon.days_left(NOW) == 10
    assert far.bucket(NOW) == "active"
    assert soon.bucket(NOW + timedelta(days=11)) == "expired"
    assert soon.days_left(NOW + timedelta(days=11)) == 0


def test_new_grant_after_an_unrecorded_expiry_marks_the_old_one_expired_not_superseded(ctx):
    old = make_grant(ctx, "acme-health", "eunomia", "aggregate", days=-3, now=NOW)
    new = make_grant(ctx, "acme-health", "eunomia", "row-level", now=NOW)
    previous = grants.get_grant(ctx.conn, old.id)
    assert previous.status == "expired" and previous.superseded_by is None
    assert grants.latest_grant(ctx.conn, new.team_id, "eunomia").id == new.id
