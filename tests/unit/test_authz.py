"""portal/authz.py: one place for each rule, each check re-reading the store.

Approval at a tier re-validates the request against that tier; a request whose terms or tier
changed must be re-confirmed; direct grants meet the tier's requirements; the operator is not
staff; every refusal is audited with its code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portal import audit, authz
from portal.errors import Denied, NotFound, Rejected
from portal.services import access as svc
from portal.services import admin
from tests.factories import make_user
from tests.factories_access import DIRECT_GRANT, PURPOSE, policy_ctx

SHORT_PURPOSE = "Cohort sizing for a feasibility study."  # 38 characters: aggregate only


@pytest.fixture
def actx(ctx, tmp_path):
    return policy_ctx(ctx, tmp_path / "policies", ethics=True)


@pytest.fixture
def who(actx):
    return {"acme": make_user(actx, "analyst@acme-health.example", team="acme-health"),
            "staff": make_user(actx, "staff@platform.example", role="staff"),
            "other": make_user(actx, "reviewer@platform.example", role="staff")}


def _last(actx, action):
    return audit.list_events(actx.conn, action=action, limit=1)[0]


# --- approval at another tier ---------------------------------------------------------------
def test_aggregate_request_approved_at_row_level_is_refused_for_the_row_level_purpose(actx,
                                                                                     who):
    made = svc.submit_request(actx, who["acme"], "eunomia", "aggregate", SHORT_PURPOSE, True)
    with pytest.raises(Rejected) as info:
        svc.approve_request(actx, who["staff"], made["id"], 30, tier="row-level")
    assert info.value.code == "purpose_too_short"
    assert "row-level" in info.value.message
    event = _last(actx, "request.approve")
    assert (event.decision, event.reason) == ("rejected", "purpose_too_short")
    assert svc.get_request(actx, who["staff"], made["id"])["status"] == "submitted"
    assert actx.conn.execute("SELECT count(*) FROM grants").fetchone()[0] == 0


def test_approval_at_a_tier_requiring_ethics_refuses_a_request_without_a_reference(actx, who):
    made = svc.submit_request(actx, who["acme"], "eunomia", "aggregate", PURPOSE, True)
    with pytest.raises(Rejected) as info:
        svc.approve_request(actx, who["staff"], made["id"], 30, tier="row-level")
    assert info.value.code == "ethics_reference_required"
    assert not authz.can_approve_at_tier(actx.conn, actx.settings, who["staff"],
                                         _request(actx, made["id"]), "row-level")
    assert authz.can_approve_at_tier(actx.conn, actx.settings, who["staff"],
                                     _request(actx, made["id"]), "aggregate")


def test_approval_at_another_tier_that_the_request_meets_gives_that_tier(actx, who):
    made = svc.submit_request(actx, who["acme"], "eunomia", "aggregate", PURPOSE, True,
                              ethics_reference="IRB-2026-114")
    approved = svc.approve_request(actx, who["staff"], made["id"], 30, tier="row-level")
    assert approved["status"] == "approved"
    grant = actx.conn.execute("SELECT tier FROM grants WHERE id = ?",
                              (approved["grant_id"],)).fetchone()
    assert grant["tier"] == "row-level"


def _request(actx, request_id):
    from portal.access import requests

    return requests.get(actx.conn, request_id)


# --- terms or tier changed since the request ------------------------------------------------
def test_request_whose_terms_changed_is_refused_until_the_team_reconfirms(actx, who):
    made = svc.submit_request(actx, who["acme"], "eunomia", "aggregate", PURPOSE, True)
    path = actx.settings.policies_dir / "eunomia.yaml"
    path.write_text(path.read_text().replace("Do not attempt re-identification.",
                                             "Do not attempt re-identification or linkage."))
    with pytest.raises(Rejected) as info:
        svc.approve_request(actx, who["staff"], made["id"], 30)
    assert info.value.code == "terms_changed"
    assert _last(actx, "request.approve").reason == "terms_changed"
    svc.reconfirm_request(actx, who["acme"], made["id"], agreed_terms=True)
    assert _last(actx, "request.reconfirm").decision == "done"
    assert svc.approve_request(actx, who["staff"], made["id"], 30)["status"] == "approved"


def test_request_whose_tier_changed_is_refused_until_the_team_reconfirms(actx, who):
    made = svc.submit_request(actx, who["acme"], "eunomia", "aggregate", PURPOSE, True)
    path = actx.settings.policies_dir / "eunomia.yaml"
    path.write_text(path.read_text().replace("max_rows: 10000", "max_rows: 50000"))
    with pytest.raises(Rejected) as info:
        svc.approve_request(actx, who["staff"], made["id"], 30)
    assert info.value.code == "tier_changed"
    svc.reconfirm_request(actx, who["acme"], made["id"], agreed_terms=True)
    assert svc.approve_request(actx, who["staff"], made["id"], 30)["status"] == "approved"


def test_a_change_of_operational_limits_needs_no_reconfirmation(actx, who):
    made = svc.submit_request(actx, who["acme"], "eunomia", "aggregate", PURPOSE, True)
    path = actx.settings.policies_dir / "eunomia.yaml"
    path.write_text(path.read_text().replace("max_grant_days: 180", "max_grant_days: 120"))
    assert svc.approve_request(actx, who["staff"], made["id"], 30)["status"] == "approved"


def test_only_the_requesting_team_can_reconfirm_and_only_an_open_request(actx, who):
    made = svc.submit_request(actx, who["acme"], "eunomia", "aggregate", PURPOSE, True)
    stranger = make_user(actx, "founder@gamma-ai.example", team="gamma-ai")
    with pytest.raises(Denied) as info:
        svc.reconfirm_request(actx, stranger, made["id"], agreed_terms=True)
    assert info.value.code == "not_your_request"
    svc.withdraw_request(actx, who["acme"], made["id"])
    with pytest.raises(Denied) as info:
        svc.reconfirm_request(actx, who["acme"], made["id"], agreed_terms=True)
    assert info.value.code == "invalid_transition"
    assert _last(actx, "request.reconfirm").decision == "denied"


# --- direct grants --------------------------------------------------------------------------
@pytest.mark.parametrize(("options", "code"), [
    ({}, "purpose_too_short"),
    ({"purpose": SHORT_PURPOSE, "terms_agreed": True}, "purpose_too_short"),
    ({"purpose": PURPOSE}, "terms_not_agreed"),
    ({"purpose": PURPOSE, "terms_agreed": True}, "ethics_reference_required"),
])
def test_direct_grant_must_meet_the_tiers_request_requirements(actx, who, options, code):
    with pytest.raises(Rejected) as info:
        svc.grant_access(actx, who["staff"], "acme-health", "eunomia", "row-level", 30, **options)
    assert info.value.code == code
    event = _last(actx, "grant.create")
    assert (event.decision, event.reason) == ("rejected", code)
    assert actx.conn.execute("SELECT count(*) FROM grants").fetchone()[0] == 0


def test_direct_grant_meeting_the_tier_is_made(actx, who):
    made = svc.grant_access(actx, who["staff"], "acme-health", "eunomia", "row-level", 30,
                            ethics_reference="IRB-7", **DIRECT_GRANT)
    assert made["tier"] == "row-level" and made["purpose"] == DIRECT_GRANT["purpose"]


# --- one notion of staff --------------------------------------------------------------------
def test_the_operator_is_not_staff_and_cannot_review_or_grant(actx, who):
    made = svc.submit_request(actx, who["acme"], "eunomia", "aggregate", PURPOSE, True)
    assert not authz.can_staff(actx.conn, authz.OPERATOR)
    with pytest.raises(Denied) as info:
        svc.approve_request(actx, authz.OPERATOR, made["id"], 30)
    assert info.value.code == "staff_only"
    assert _last(actx, "request.approve").actor == "cli-operator"
    with pytest.raises(Denied):
        svc.grant_access(actx, authz.OPERATOR, "acme-health", "eunomia", "aggregate", 30,
                         **DIRECT_GRANT)


def test_the_operator_may_run_maintenance_but_members_may_not(actx, who):
    assert admin.audit_events(actx, authz.OPERATOR, limit=5) is not None
    with pytest.raises(Denied) as info:
        admin.audit_events(actx, who["acme"], limit=5)
    assert info.value.code == "staff_only"


def test_checks_reread_the_store_not_the_principal(actx, who):
    actx.conn.execute("UPDATE users SET status = 'suspended' WHERE id = ?",
                      (who["other"].user_id,))
    assert who["other"].role == "staff" and who["other"].status == "active"
    with pytest.raises(Denied) as info:
        authz.check_staff(actx.conn, who["other"])
    assert info.value.code == "user_suspended"
    actx.conn.execute("UPDATE teams SET status = 'suspended' WHERE slug = 'acme-health'")
    with pytest.raises(Denied) as info:
        authz.check_member(actx.conn, who["acme"])
    assert info.value.code == "team_suspended"
    assert not authz.can_browse(actx.conn, who["acme"])


def test_team_access_follows_expiry_by_time_alone(actx, who):
    svc.grant_access(actx, who["staff"], "acme-health", "eunomia", "aggregate", 3,
                     **DIRECT_GRANT)
    assert authz.can_team_access(actx.conn, "acme-health", "eunomia")
    later = datetime.now(UTC) + timedelta(days=4)
    with pytest.raises(Denied) as info:
        authz.check_team_access(actx.conn, "acme-health", "eunomia", now=later)
    assert info.value.code == "grant_expired"
    stored = actx.conn.execute("SELECT status FROM grants").fetchone()["status"]
    assert stored == "active"  # nothing recorded the expiry: time alone decides


def test_another_teams_run_is_not_found_not_forbidden(actx, who):
    stranger = make_user(actx, "founder@gamma-ai.example", team="gamma-ai")
    run = {"team": "acme-health", "status": "completed"}
    authz.check_view_run(actx.conn, who["acme"], run)
    authz.check_view_run(actx.conn, who["staff"], run)
    with pytest.raises(NotFound) as info:
        authz.check_view_run(actx.conn, stranger, run)
    assert info.value.code == "run_not_found"

