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
