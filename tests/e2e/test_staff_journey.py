"""Staff in real Chromium with the real development sign-in: a confirmation that acts only on
Confirm, the audit pickers, and signing out straight back to the portal."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import Shots, go, new_page, sign_in, wait_idle

pytestmark = pytest.mark.e2e
STAFF = "staff@platform.example"


def test_staff_confirm_a_rebuild_read_the_report_and_sign_out_to_the_portal(stack, browser):
    from portal import audit
    from portal.services.context import Context

    shots = Shots("staff")
    page = new_page(browser)
    sign_in(page, stack, STAFF, shots)
    go(page, stack, "datasets", "Datasets")
    page.get_by_role("heading", name="Persons and rows").wait_for()
    shots(page, "datasets-report")

    page.get_by_role("button", name="Rebuild extracts").click()
    page.get_by_text("governed extract from the current release?").wait_for()
    wait_idle(page)
    shots(page, "rebuild-asks")
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("governed extract from the current release?").wait_for(state="detached")
    wait_idle(page)
    ctx = Context.open(stack.settings)
    try:
        assert not audit.list_events(ctx.conn, action="extracts.rebuild")
    finally:
        ctx.close()

    page.get_by_role("button", name="Rebuild extracts").click()
    page.get_by_role("button", name="Confirm: rebuild extracts").click()
    page.get_by_text(re.compile(r"Extracts current for tiers")).wait_for()
    wait_idle(page)
    shots(page, "rebuild-done")

    go(page, stack, "audit", "Audit")
    page.get_by_label("Action", exact=True).click()
    page.get_by_role("option", name="extracts.rebuild", exact=True).click()
    wait_idle(page)
    page.get_by_text("Event details").first.wait_for()
    shots(page, "audit-filtered")

    end_session = []
    page.on("request", lambda request: end_session.append(request.url)
            if "end_session" in request.url else None)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    wait_idle(page)
    shots(page, "signed-out")
    assert page.url.startswith(stack.url)
    assert end_session == []  # never sent to the provider's end-session page
    assert page.get_by_text("Development sign-in").first.is_visible()
    page.context.close()
