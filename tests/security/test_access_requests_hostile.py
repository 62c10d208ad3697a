"""Hostile and bad input to the access workflow: each refused with a clear code, nothing leaked
in the message, and an audit record of the refusal."""

import pytest

from portal import audit
from portal.errors import Denied, InvalidInput, NotFound, Rejected
from portal.services import access as svc
from tests.factories import make_user
from tests.factories_access import PURPOSE, policy_ctx, refused, submit


# --- submission -------------------------------------------------------------------------------
@pytest.mark.parametrize(("purpose", "code"), [
    ("too short", "purpose_too_short"),
    ("   " + "x" * 10 + "   " * 20, "purpose_too_short"),  # white space does not count
    ("x" * 401, "purpose_too_long"),
    ("x" * 1_000_000, "purpose_too_long"),
    (PURPOSE + "\x00", "purpose_invalid"),
])
def test_submit_with_bad_purpose_is_invalid(actx, who, purpose, code):
    refused(actx, lambda: submit(actx, who["acme"], purpose=purpose), InvalidInput, code,
            "request.submit")
    event = audit.list_events(actx.conn, action="request.submit")[0]
    assert "x" * 50 not in str(event.details)  # the purpose text is not copied into the log


def test_submit_without_agreeing_to_terms_is_invalid(actx, who):
    refused(actx, lambda: submit(actx, who["acme"], agreed_terms=False), InvalidInput,
            "terms_not_agreed", "request.submit")


def test_submit_with_truthy_non_boolean_terms_is_invalid(actx, who):
    refused(actx, lambda: submit(actx, who["acme"], agreed_terms="yes"), InvalidInput,
            "terms_not_agreed", "request.submit")


def test_submit_without_ethics_reference_when_required_is_invalid(ctx, tmp_path):
    actx = policy_ctx(ctx, tmp_path / "ethics", ethics=True)
    member = make_user(actx, "a@acme.example", team="acme-health")
    refused(actx, lambda: submit(actx, member, ethics_reference="  "), InvalidInput,
            "ethics_reference_required", "request.submit")
    assert submit(actx, member, ethics_reference="REC 24/LO/0042")["ethics_reference"] \
        == "REC 24/LO/0042"


@pytest.mark.parametrize("dataset", ["nope", "../../etc/passwd", "eunomia'; DROP TABLE grants;--",
                                     "<img src=x onerror=alert(1)>"])
def test_submit_for_unknown_dataset_is_not_found_without_echo(actx, who, dataset):
    refused(actx, lambda: submit(actx, who["acme"], dataset=dataset), NotFound,
            "unknown_dataset", "request.submit", hostile=dataset)
    assert actx.conn.execute("SELECT count(*) FROM grants").fetchone()[0] == 0


def test_submit_for_unknown_tier_is_not_found(actx, who):
    refused(actx, lambda: submit(actx, who["acme"], tier="<script>x</script>"), NotFound,
            "unknown_tier", "request.submit", hostile="<script>")


def test_staff_cannot_request(actx, who):
    refused(actx, lambda: submit(actx, who["staff"]), Denied, "staff_cannot_request",
            "request.submit")


def test_suspended_member_cannot_request(actx, who):
    actx.conn.execute("UPDATE users SET status = 'suspended' WHERE id = ?",
                      (who["acme"].user_id,))
    refused(actx, lambda: submit(actx, who["acme"]), Denied, "user_suspended",
            "request.submit")


def test_member_of_suspended_team_cannot_request(actx, who):
    actx.conn.execute("UPDATE teams SET status = 'suspended' WHERE slug = 'acme-health'")
    refused(actx, lambda: submit(actx, who["acme"]), Denied, "team_suspended",
            "request.submit")


def test_duplicate_open_request_is_rejected(actx, who):
    submit(actx, who["acme"])
    refused(actx, lambda: submit(actx, who["acme"]), Rejected, "duplicate_request",
            "request.submit")


def test_html_and_script_in_purpose_is_stored_verbatim_as_text(actx, who):
    hostile = "<script>alert('x')</script><img src=x onerror=alert(1)> " + PURPOSE
    made = submit(actx, who["acme"], purpose=hostile)
    assert made["purpose"] == hostile
    assert svc.list_requests(actx, who["staff"])[0]["purpose"] == hostile


# --- tampering with ids -----------------------------------------------------------------------
def test_withdrawing_another_teams_request_is_denied_and_audited(actx, who):
    made = submit(actx, who["acme"])
    refused(actx, lambda: svc.withdraw_request(actx, who["gamma"], made["id"]), Denied,
            "not_your_request", "request.withdraw")
    assert svc.list_requests(actx, who["acme"])[0]["status"] == "submitted"


def test_viewing_another_teams_request_is_denied_and_audited(actx, who):
    made = submit(actx, who["acme"])
    refused(actx, lambda: svc.get_request(actx, who["gamma"], made["id"]), Denied,
            "not_your_request", "request.view")


@pytest.mark.parametrize("request_id", [999, "1 OR 1=1", "../1", None])
def test_unknown_or_malformed_request_id_is_not_found(actx, who, request_id):
    submit(actx, who["acme"])
    refused(actx, lambda: svc.approve_request(actx, who["staff"], request_id, days=10),
            NotFound, "unknown_request", "request.approve")


def test_member_listing_sees_nothing_of_other_teams(actx, who):
    submit(actx, who["acme"])
    assert svc.list_requests(actx, who["gamma"]) == []
    assert svc.list_grants(actx, who["gamma"]) == []
