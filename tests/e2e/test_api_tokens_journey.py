"""In real Chromium: a member makes an API token on the API tokens page, copies it once, a CI job
uses it over HTTP, then the member revokes it and the next call is refused."""

from __future__ import annotations

import re

import pytest

from portal import audit
from portal.services import tokens
from portal.services.context import Context
from tests.e2e.conftest import Shots, go, new_page, sign_in, wait_idle
from tests.integration.api.helpers import LiveApi

pytestmark = pytest.mark.e2e
FOUNDER = "founder@gamma-ai.example"


def _pick(page, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=re.compile("^" + re.escape(option))).click()
    page.keyboard.press("Escape")
    wait_idle(page)


def test_make_a_token_in_the_browser_use_it_from_ci_then_revoke_it(stack, browser):
    shots = Shots("api-tokens")
    page = new_page(browser)
    sign_in(page, stack, FOUNDER)
    go(page, stack, "api-tokens", "API tokens")
    page.get_by_label(re.compile(r"^Name")).fill("GitHub Actions")
    _pick(page, "Datasets", "eunomia")
    _pick(page, "Actions", "sandbox:read")
    shots(page, "form")
    page.get_by_role("button", name="Create token").click()
    page.get_by_text("shown only this once").wait_for()
    wait_idle(page)
    shots(page, "created")
    secret = page.locator("code").filter(has_text=tokens.PREFIX).first.inner_text().strip()
    assert tokens.TOKEN_PATTERN.fullmatch(secret)

    api = LiveApi(stack.settings)
    try:
        with api.client(secret) as http:
            me = http.get("/api/v1/token")
            assert me.status_code == 200 and me.json()["owner"] == FOUNDER
            assert me.json()["datasets"] == ["eunomia"]

            page.reload()
            page.get_by_role("heading", name="Your tokens").wait_for()
            wait_idle(page)
            assert secret not in page.content()  # shown once, never again
            page.get_by_role("button", name="Revoke").click()
            page.get_by_text(re.compile("revoked: it stops working")).wait_for()
            wait_idle(page)
            shots(page, "revoked")
            refused = http.get("/api/v1/token")
    finally:
        api.stop()
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_revoked"
    ctx = Context.open(stack.settings)
    try:
        events = audit.list_events(ctx.conn, actor=FOUNDER)
    finally:
        ctx.close()
    assert {"token.create", "token.revoke", "token.use"} <= {e.action for e in events}
