"""Request access page: a request whose dataset terms changed since it was made is refused at
approval (terms_changed) until a member of the team re-confirms it on the page."""

from __future__ import annotations

import shutil

import pytest

from portal.config import Settings
from portal.errors import Rejected
from portal.identity import principal_for_email
from portal.services import access
from portal.services.context import Context
from tests.app.helpers import ROOT, app, claims, error_codes
from tests.factories_access import PURPOSE

FOUNDER, STAFF = "founder@gamma-ai.example", "staff@platform.example"


@pytest.fixture
def changed_terms(seeded, tmp_path, monkeypatch):
    """An aggregate request of gamma-ai, then the eunomia terms edited (policies copied)."""
    folder = tmp_path / "policies"
    shutil.copytree(ROOT / "access_policies", folder)
    monkeypatch.setenv("PORTAL_POLICIES_DIR", str(folder))
    ctx = Context(settings=Settings.from_env(), conn=seeded.conn)
    founder = principal_for_email(ctx.conn, FOUNDER)
    made = access.submit_request(ctx, founder, "eunomia", "aggregate", PURPOSE, True)
    path = folder / "eunomia.yaml"
    path.write_text(path.read_text().replace("at once.", "at once, in writing."))
    return ctx, made["id"]


def test_member_reconfirms_on_the_page_and_staff_can_then_approve(changed_terms):
    ctx, request_id = changed_terms
    staff = principal_for_email(ctx.conn, STAFF)
    with pytest.raises(Rejected) as info:
        access.approve_request(ctx, staff, request_id, 30)
    assert info.value.code == "terms_changed"
    at = app("request_access.py", claims(FOUNDER))
    at.run()
    at.button(key="reconfirm").click().run()  # without agreeing: refused, still open
    assert error_codes(at) == ["terms_not_agreed"]
    at.checkbox(key="reconfirm_terms").check()
    at.button(key="reconfirm").click().run()
    assert not at.error, [e.value for e in at.error]
    assert access.approve_request(ctx, staff, request_id, 30)["status"] == "approved"
