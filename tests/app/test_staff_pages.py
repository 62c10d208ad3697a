"""AppTest of the staff pages: review, grants, teams and people, audit, datasets."""

from __future__ import annotations

from dataclasses import replace

import pytest

from portal import audit
from portal.identity import principal_for_email
from portal.services import access
from portal.services.context import Context
from portal.store import people
from portal.store.db import transaction
from tests.app.helpers import app, claims, error_codes, texts
from tests.factories_access import make_grant

STAFF = "staff@platform.example"
REVIEWER = "reviewer@platform.example"
FOUNDER = "founder@gamma-ai.example"
PURPOSE = "Estimate GI bleeding after NSAID exposure to calibrate a triage model for our product."
HOSTILE = "<img src=x onerror=alert(1)>"


def approve(at, request_id: int) -> None:
    """Approve, then confirm the terms shown."""
    [b for b in at.button if b.label == "Approve"][0].click().run()
    at.button(key=f"approve_{request_id}__yes").click().run()


@pytest.fixture
def requested(seeded):
    founder = principal_for_email(seeded.conn, FOUNDER)
    made = access.submit_request(seeded, founder, "eunomia", "row-level", PURPOSE, True)
    return seeded, made["id"]


def test_review_queue_shows_the_request_and_approves_it(requested):
    ctx, request_id = requested
    at = app("review_queue.py", claims(STAFF))
    at.run()
    shown = texts(at)
    assert f"Request {request_id}" in shown and PURPOSE in shown and "gamma-ai" in shown
    at.number_input(key=f"days_{request_id}").set_value(30)
    at.text_area(key=f"conditions_{request_id}").input("No linkage.")
    at.button[0].click().run()  # Approve: asks first
    assert not at.exception and not at.success
    asked = "\n".join(w.value for w in at.warning).replace("\\", "")
    assert "Team **gamma-ai** gets tier **row-level** of **eunomia** for 30 days" in asked
    assert "No linkage." in asked
    assert not access.list_grants(ctx, principal_for_email(ctx.conn, STAFF))
    at.button(key=f"approve_{request_id}__yes").click().run()
    assert not at.exception
    assert any("approved" in s.value for s in at.success)
    grant = access.list_grants(ctx, principal_for_email(ctx.conn, STAFF))[0]
    assert grant["days_left"] in (29, 30) and grant["conditions"] == "No linkage."


def test_review_queue_deny_needs_a_reason(requested):
    ctx, request_id = requested
    at = app("review_queue.py", claims(STAFF))
    at.run()
    deny = [b for b in at.button if b.label == "Deny"][0]
    deny.click().run()
    assert error_codes(at) == ["reason_required"]
    at.text_area(key=f"reason_{request_id}").input("Purpose too vague.")
    [b for b in at.button if b.label == "Deny"][0].click().run()
    assert any("denied" in s.value for s in at.success)


def test_review_of_own_team_request_is_refused_by_the_service_and_audited(requested):
    ctx, request_id = requested
    with transaction(ctx.conn):
        reviewer = people.get_user_by_email(ctx.conn, REVIEWER)
        people.set_membership(ctx.conn, reviewer["id"], people.get_team(ctx.conn, "gamma-ai")["id"])
    at = app("review_queue.py", claims(REVIEWER))
    at.run()
    assert any("own_team" in w.value.replace("\\", "") for w in at.warning)
    approve(at, request_id)  # anyway
    assert error_codes(at) == ["own_team"]
    events = audit.list_events(ctx.conn, action="request.approve", decision="denied")
    assert events and events[0].actor == REVIEWER and events[0].reason == "own_team"


def test_review_duration_beyond_the_policy_maximum_is_refused(requested):
    ctx, request_id = requested
    at = app("review_queue.py", claims(STAFF))
    at.run()
    at.number_input(key=f"days_{request_id}").set_value(3000)
    approve(at, request_id)
    assert error_codes(at) == ["duration_exceeds_policy"]


def test_grants_page_buckets_and_revokes_with_a_reason(seeded):
    make_grant(seeded, "gamma-ai", "eunomia", "row-level", days=90)
    make_grant(seeded, "beta-bio", "eunomia", "row-level", days=5)
    at = app("grants.py", claims(STAFF))
    at.run()
    assert [t.label for t in at.tabs] == ["Active (1)", "Expiring soon (1)", "Expired (0)",
                                          "Revoked (0)"]
    at.button[0].click().run()
    assert error_codes(at) == ["reason_required"]
    at.text_area(key="revoke_reason").input("Misuse reported.")
    at.button[0].click().run()
    assert any("revoked" in s.value for s in at.success)
    assert "Revoked (1)" in [t.label for t in at.tabs]


def test_teams_page_onboards_and_escapes_a_hostile_display_name(seeded):
    at = app("teams.py", claims(STAFF))
    at.run()
    at.text_input(key="onboard_slug").input("delta-labs")
    at.text_input(key="onboard_name").input(HOSTILE)
    at.text_area(key="onboard_emails").input("a@delta.example\nb@delta.example")
    [b for b in at.button if b.label == "Create team and invite"][0].click().run()
    assert not at.exception and any("delta-labs created" in s.value for s in at.success)
    labels = [e.label for e in at.expander]
    assert any("img src" in label for label in labels)
    assert not any(HOSTILE in label for label in labels)  # escaped, so never markup
    assert "a@delta.example" in texts(at)


def _suspend_on_teams_page(email: str, reason: str):
    """Staff apply the Teams page's default action (suspend) to ``email``."""
    at = app("teams.py", claims(STAFF))
    at.run()
    at.text_input(key="member_email").input(email)
    at.text_input(key="member_reason").input(reason)
    [b for b in at.button if b.label == "Apply"][0].click().run()
    return at


def test_teams_page_suspends_a_member_who_is_refused_at_the_next_click(seeded):
    member = app("home.py", claims(FOUNDER))
    member.run()
    assert not member.error
    at = _suspend_on_teams_page(FOUNDER, "Left the company.")
    assert not at.error, [e.value for e in at.error]
    member.run()
    assert error_codes(member) == ["user_suspended"]


def test_teams_page_refuses_suspending_ones_own_account_and_audits_it(seeded):
    at = _suspend_on_teams_page(STAFF, "tamper")
    assert error_codes(at) == ["own_account"]
    refused = audit.list_events(seeded.conn, action="member.suspend")
    assert [(e.decision, e.reason) for e in refused] == [("denied", "own_account")]


def test_teams_page_suspends_a_staff_account_who_is_then_refused_staff_pages(seeded):
    at = _suspend_on_teams_page(REVIEWER, "Left the data office.")
    assert not at.error, [e.value for e in at.error]
    reviewer = app("review_queue.py", claims(REVIEWER))
    reviewer.run()
    assert error_codes(reviewer) == ["user_suspended"]


def test_audit_page_shows_chain_status_filters_and_exports_csv(requested):
    ctx, _ = requested
    at = app("audit_log.py", claims(STAFF))
    at.run()
    assert any("Audit chain verifies" in s.value for s in at.success)
    at.selectbox(key="audit_action").select("request.submit").run()
    frame = at.dataframe[0].value
    assert set(frame["action"]) == {"request.submit"}
    assert [b.label for b in at.get("download_button")] == ["Export CSV"]


def test_audit_page_reports_a_broken_chain(seeded):
    seeded.conn.execute("DROP TRIGGER audit_events_no_update")
    seeded.conn.execute("UPDATE audit_events SET actor = 'someone-else' WHERE id = 1")
    at = app("audit_log.py", claims(STAFF))
    at.run()
    assert any("does NOT verify" in e.value for e in at.error)


def test_datasets_page_lists_releases_and_rebuilds_extracts(released):
    at = app("datasets_admin.py", claims(STAFF))
    at.run()
    assert not at.exception
    assert "eunomia" in texts(at)
    at.button(key="admin_rebuild_extracts").click().run()
    assert any("governed extract" in w.value for w in at.warning)  # asks first
    assert not audit.list_events(released.conn, action="extracts.rebuild")
    at.button(key="admin_rebuild_extracts__yes").click().run()
    assert any("row-level" in s.value for s in at.success)
    assert audit.list_events(released.conn, action="extracts.rebuild")


def test_staff_home_shows_what_needs_attention(requested):
    at = app("home.py", claims(STAFF))
    at.run()
    assert not at.exception
    assert [m.label for m in at.metric][0] == "Open requests"
    assert at.metric[0].value == "1"


def test_two_approval_tier_needs_a_second_member_of_staff(seeded, tmp_path, monkeypatch):
    from tests.factories_access import write_policy

    write_policy(tmp_path / "policies", row_level_approvals=2)
    monkeypatch.setenv("PORTAL_POLICIES_DIR", str(tmp_path / "policies"))  # the pages' settings
    ctx = Context(settings=replace(seeded.settings, policies_dir=tmp_path / "policies"),
                  conn=seeded.conn)
    founder = principal_for_email(ctx.conn, FOUNDER)
    made = access.submit_request(ctx, founder, "eunomia", "row-level", PURPOSE, True)
    first = app("review_queue.py", claims(STAFF))
    first.run()
    approve(first, made["id"])
    assert any("awaiting_second_approval" in s.value.replace("\\", "") for s in first.success)
    approve(first, made["id"])  # the same person again
    assert error_codes(first) == ["already_reviewed"]
    second = app("review_queue.py", claims(REVIEWER))
    second.run()
    assert "approvals 1/2" in texts(second)
    approve(second, made["id"])
    assert any("Status: approved" in s.value for s in second.success)
    assert access.get_request(ctx, founder, made["id"])["status"] == "approved"


def test_audit_page_checks_only_new_events_and_verifies_everything_on_demand(seeded):
    at = app("audit_log.py", claims(STAFF))
    at.run()  # the first visit verifies the whole chain and remembers its head
    seeded.conn.execute("DROP TRIGGER audit_events_no_update")
    seeded.conn.execute("UPDATE audit_events SET actor = 'someone-else' WHERE id = 1")
    audit.record(seeded.conn, actor="a@x.example", action="x", decision="done")
    at.run()
    assert any("1 new event(s) checked" in s.value for s in at.success)
    at.button(key="audit_verify_full").click().run()
    assert any("does NOT verify" in e.value and "event 1" in e.value for e in at.error)
    assert audit.list_events(seeded.conn, action="audit.verify", decision="failed")


def test_audit_page_signs_a_checkpoint_that_later_catches_truncation(seeded):
    at = app("audit_log.py", claims(STAFF))
    at.run()
    at.button(key="audit_checkpoint").click().run()
    assert not at.exception and not at.error
    assert audit.list_events(seeded.conn, action="audit.checkpoint", decision="done")
    head = seeded.conn.execute("SELECT max(id) FROM audit_events").fetchone()[0]
    seeded.conn.execute("DROP TRIGGER audit_events_no_delete")
    seeded.conn.execute("DELETE FROM audit_events WHERE id >= ?", (head - 1,))
    seeded.conn.execute("DELETE FROM audit_verified")
    at.run()
    assert any("newest events were removed" in e.value for e in at.error)
