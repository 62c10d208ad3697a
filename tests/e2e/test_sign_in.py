"""Real sign-in through the development provider in real Chromium."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Shots, go, new_page, sign_in, sign_out, wait_idle

pytestmark = pytest.mark.e2e


def test_founder_signs_in_sees_home_and_signs_out(stack, browser):
    shots = Shots("sign-in")
    page = new_page(browser)
    page.goto(stack.url)
    page.get_by_role("button", name="Sign in").wait_for()
    assert page.get_by_text("Development sign-in").first.is_visible()
    shots(page, "signed-out")
    sign_in(page, stack, "founder@gamma-ai.example", shots)
    assert page.get_by_text("gamma-ai").first.is_visible()
    shots(page, "home")
    go(page, stack, "catalog", "Catalog")
    page.get_by_text("Eunomia GiBleed").first.wait_for()
    shots(page, "catalog")
    page.get_by_role("tab", name="De-identification report").click()
    page.get_by_text("Persons by age band and sex").wait_for()
    page.wait_for_timeout(500)
    shots(page, "catalog-report")
    page.get_by_role("tab", name="Access tiers").click()
    shots(page, "catalog-tiers")
    sign_out(page)
    wait_idle(page)
    shots(page, "signed-out-again")
    page.context.close()


def test_suspension_takes_effect_at_the_next_click(stack, browser):
    from portal.identity import principal_for_email
    from portal.services import people
    from portal.services.context import Context

    shots = Shots("suspension")
    page = new_page(browser)
    sign_in(page, stack, "analyst@beta-bio.example", shots)
    shots(page, "home")
    ctx = Context.open(stack.settings)
    try:
        staff = principal_for_email(ctx.conn, "staff@platform.example")
        people.suspend_member(ctx, staff, "analyst@beta-bio.example", "Security review.")
        page.get_by_role("link", name="Catalog").click()
        page.get_by_text("user_suspended").first.wait_for()
        wait_idle(page)
        shots(page, "refused")
        assert page.get_by_role("heading", name="Catalog").count() == 0
    finally:
        people.reactivate_member(ctx, staff, "analyst@beta-bio.example")
        ctx.close()
        page.context.close()
