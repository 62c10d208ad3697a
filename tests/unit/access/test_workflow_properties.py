"""Random sequences of requests, reviews, withdrawals, grants and revocations by random people
keep the workflow's invariants (property-based, with Hypothesis)."""

import tempfile
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal import audit
from portal.access import states
from portal.config import Settings
from portal.errors import UserError
from portal.services import access as svc
from portal.services.context import Context
from tests.factories import make_user
from tests.factories_access import DIRECT_GRANT, PURPOSE, write_policy

ACTIONS = ("submit", "approve", "deny", "withdraw", "grant", "revoke")
step = st.tuples(st.sampled_from(ACTIONS), st.integers(0, 4), st.integers(0, 5),
                 st.sampled_from(["row-level", "aggregate"]), st.integers(-1, 200))


def _world(home: Path):
    write_policy(home / "policies", row_level_approvals=2)
    base = Settings.from_env({"PORTAL_HOME": str(home / "h")})
    ctx = Context.open(replace(base, policies_dir=home / "policies"))
    people = [make_user(ctx, "a1@acme.example", team="acme-health"),
              make_user(ctx, "a2@acme.example", team="acme-health"),
              make_user(ctx, "g@gamma.example", team="gamma-ai"),
              make_user(ctx, "s1@platform.example", role="staff"),
              make_user(ctx, "s2@platform.example", role="staff")]
    # s2 is also registered in acme-health: separation of duties must stop them there
    ctx.conn.execute("INSERT INTO memberships (user_id, team_id, created_at) VALUES (?, ?, 'x')",
                     (people[4].user_id, people[0].team_id))
    return ctx, people


def _do(ctx, people, action, who_index, target, tier, days):
    who = people[who_index]
    ids = [r[0] for r in ctx.conn.execute("SELECT id FROM access_requests ORDER BY id")]
    rid = ids[target % len(ids)] if ids else 1
    if action == "submit":
        svc.submit_request(ctx, who, "eunomia", tier, PURPOSE, True)
    elif action == "approve":
        svc.approve_request(ctx, who, rid, days, tier)
    elif action == "deny":
        svc.deny_request(ctx, who, rid, "no")
    elif action == "withdraw":
        svc.withdraw_request(ctx, who, rid)
    elif action == "grant":
        svc.grant_access(ctx, who, ["acme-health", "gamma-ai"][target % 2], "eunomia", tier,
                         days, **DIRECT_GRANT)
    else:
        svc.revoke_grant(ctx, who, target + 1, "ended")


def _check_invariants(ctx):
    conn = ctx.conn
    dup = conn.execute("SELECT team_id, dataset_id FROM grants WHERE status = 'active'"
                       " GROUP BY 1, 2 HAVING count(*) > 1").fetchall()
    assert dup == []
    for req in conn.execute("SELECT * FROM access_requests"):
        assert req["status"] in states.REQUEST_STATES
        approvals = conn.execute(
            "SELECT v.reviewer_id, u.role FROM request_reviews v JOIN users u"
            " ON u.id = v.reviewer_id WHERE v.request_id = ? AND v.decision = 'approve'",
            (req["id"],)).fetchall()
        assert len({a[0] for a in approvals}) == len(approvals)
        assert all(a[1] == "staff" and a[0] != req["requested_by"] for a in approvals)
        own_team = conn.execute(
            "SELECT count(*) FROM request_reviews v JOIN memberships m ON m.user_id ="
            " v.reviewer_id WHERE v.request_id = ? AND m.team_id = ?",
            (req["id"], req["team_id"])).fetchone()[0]
        assert own_team == 0
        if req["status"] == "approved":
            assert len(approvals) >= req["approvals_required"]
            grant = conn.execute("SELECT * FROM grants WHERE id = ?", (req["grant_id"],)).fetchone()
            assert grant["request_id"] == req["id"] and grant["team_id"] == req["team_id"]
        else:
            assert req["grant_id"] is None
    assert audit.verify(conn).ok


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=25))
def test_random_workflow_keeps_invariants(steps):
    with tempfile.TemporaryDirectory() as tmp:
        ctx, people = _world(Path(tmp))
        try:
            for action, who, target, tier, days in steps:
                events_before = len(audit.list_events(ctx.conn, limit=100000))
                try:
                    _do(ctx, people, action, who, target, tier, days)
                except UserError:
                    # a refusal changes nothing but adds exactly one audit event
                    assert len(audit.list_events(ctx.conn, limit=100000)) == events_before + 1
                _check_invariants(ctx)
        finally:
            ctx.close()
