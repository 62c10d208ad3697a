"""The transition tables are complete: every state appears, every declared transition is
reached by the real code, and the real code makes no transition the tables do not declare."""

from datetime import timedelta

import pytest

from portal.access import grants, states
from portal.errors import Denied
from portal.identity import bind_identity
from portal.services import access as svc
from portal.services import people as people_svc
from tests.factories import make_user
from tests.factories_access import DIRECT_GRANT, PURPOSE, policy_ctx

TABLES = {"request": "access_requests", "grant": "grants", "member": "users", "team": "teams"}


@pytest.mark.parametrize("machine", list(states.MACHINES))
def test_every_state_appears_in_a_transition_and_every_transition_names_known_states(machine):
    names, initial, transitions = states.MACHINES[machine]
    assert initial in names
    touched = {t.source for t in transitions} | {t.target for t in transitions}
    assert touched == set(names), f"states without transitions: {set(names) - touched}"
    assert states.FINAL_STATES[machine] <= set(names)
    for final in states.FINAL_STATES[machine]:
        assert not [t for t in transitions if t.source == final], f"{final} is final"
    assert all(t.owner in ("member", "staff", "system") for t in transitions)


def test_every_state_is_reachable_from_the_initial_state():
    for machine, (names, initial, transitions) in states.MACHINES.items():
        reached, frontier = {initial}, [initial]
        while frontier:
            here = frontier.pop()
            for t in transitions:
                if t.source == here and t.target not in reached:
                    reached.add(t.target)
                    frontier.append(t.target)
        assert reached == set(names), machine


def test_check_transition_refuses_undeclared_moves():
    with pytest.raises(Denied) as info:
        states.check_transition("request", "approved", "withdrawn", "withdraw")
    assert info.value.code == "invalid_transition"
    assert not states.can_transition("grant", "revoked", "active", "revoke")
    assert states.can_transition("grant", "active", "expired", "expire")


def _watch(conn):
    """Temporary triggers recording every status written to the four tables."""
    conn.execute("CREATE TEMP TABLE seen (machine TEXT, source TEXT, target TEXT)")
    for machine, table in TABLES.items():
        conn.execute(f"CREATE TEMP TRIGGER watch_{table}_u AFTER UPDATE OF status ON main.{table}"
                     f" WHEN OLD.status IS NOT NEW.status OR '{machine}' = 'request' BEGIN"
                     f" INSERT INTO seen VALUES ('{machine}', OLD.status, NEW.status); END")
        conn.execute(f"CREATE TEMP TRIGGER watch_{table}_i AFTER INSERT ON main.{table} BEGIN"
                     f" INSERT INTO seen VALUES ('{machine}', NULL, NEW.status); END")


def test_real_workflow_makes_exactly_the_declared_transitions(ctx, tmp_path):
    actx = policy_ctx(ctx, tmp_path / "policies", row_level_approvals=3)
    staff = [make_user(actx, f"s{i}@platform.example", role="staff") for i in range(3)]
    _watch(actx.conn)
    people_svc.onboard_team(actx, staff[0], "acme-health", "Acme", ["a@acme.example"])
    people_svc.onboard_team(actx, staff[0], "beta-bio", "Beta", ["b@beta.example"])
    bind_identity(actx, "a@acme.example", "https://idp", "sub-a", actor="system")
    bind_identity(actx, "b@beta.example", "https://idp", "sub-b", actor="system")
    member = make_user(actx, "a@acme.example")
    other = make_user(actx, "b@beta.example")

    def submit(who, tier):
        return svc.submit_request(actx, who, "eunomia", tier, PURPOSE, True)["id"]

    # requests: three approvals (submitted → awaiting → awaiting → approved)
    rid = submit(member, "row-level")
    for reviewer in staff:
        svc.approve_request(actx, reviewer, rid, days=30)
    # one approval; deny from both open states; withdraw from both open states
    svc.approve_request(actx, staff[0], submit(other, "aggregate"), days=30)
    svc.deny_request(actx, staff[0], submit(other, "row-level"), "no")
    rid = submit(member, "aggregate")
    svc.withdraw_request(actx, member, rid)
    rid = submit(member, "aggregate")
    svc.approve_request(actx, staff[0], rid, days=30)  # supersedes member's row-level grant
    rid = submit(other, "row-level")
    svc.approve_request(actx, staff[0], rid, days=30)
    svc.deny_request(actx, staff[1], rid, "no")
    rid = submit(other, "row-level")
    svc.approve_request(actx, staff[0], rid, days=30)
    svc.withdraw_request(actx, other, rid)
    # grants: revoke, expire
    svc.revoke_grant(actx, staff[1], grants.list_grants(actx.conn, team_id=other.team_id)[0].id,
                     "ended")
    grant = svc.grant_access(actx, staff[0], "beta-bio", "eunomia", "aggregate", 5,
                             **DIRECT_GRANT)
    grants.expire_due(actx.conn, now=grants.from_text(grant["expires_at"]) + timedelta(days=1))
    # members and teams
    people_svc.suspend_member(actx, staff[0], "a@acme.example", "x")
    people_svc.reactivate_member(actx, staff[0], "a@acme.example")
    people_svc.invite_member(actx, staff[0], "acme-health", "c@acme.example")
    people_svc.suspend_member(actx, staff[0], "c@acme.example", "x")
    people_svc.reactivate_member(actx, staff[0], "c@acme.example")
    people_svc.remove_member(actx, staff[0], "c@acme.example", "x")
    people_svc.invite_member(actx, staff[0], "acme-health", "d@acme.example")
    people_svc.remove_member(actx, staff[0], "d@acme.example", "x")
    people_svc.suspend_member(actx, staff[0], "b@beta.example", "x")
    people_svc.remove_member(actx, staff[0], "b@beta.example", "x")
    people_svc.remove_member(actx, staff[0], "a@acme.example", "x")
    people_svc.suspend_team(actx, staff[0], "beta-bio", "x")
    people_svc.reactivate_team(actx, staff[0], "beta-bio")

    seen = actx.conn.execute("SELECT DISTINCT machine, source, target FROM seen").fetchall()
    for machine, (_, initial, transitions) in states.MACHINES.items():
        declared = {(t.source, t.target) for t in transitions}
        moved = {(s, t) for m, s, t in seen if m == machine and s is not None}
        created = {t for m, s, t in seen if m == machine and s is None}
        assert moved <= declared, f"{machine}: undeclared {moved - declared}"
        assert declared <= moved, f"{machine}: never exercised {declared - moved}"
        if machine in ("request", "grant"):
            assert created == {initial}, machine
