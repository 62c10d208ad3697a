"""The real stack for browser tests: the development sign-in provider, a seeded home with real
releases, `streamlit run app.py` with its query workers, and headless Chromium (never a
downloaded browser). Screenshots of every step go to test-artifacts/ (git-ignored)."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from portal import devserver
from portal.config import Settings
from portal.demo import PERSONAS
from tests.conftest import chromium_path, require_or_skip

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    def __init__(self, settings: Settings, issuer: str, url: str, logs: Path) -> None:
        self.settings, self.issuer, self.url, self.logs = settings, issuer, url, logs


def _prepare_home(settings: Settings) -> None:
    """A real eunomia release (the release builder), and a staff member who also advises Acme
    Health (so that approving Acme's request is approving their own team's)."""
    from portal.catalog.builder import build_release
    from portal.services.context import Context
    from portal.store import people
    from portal.store.db import transaction

    ctx = Context.open(settings)
    try:
        build_release(settings, ctx.conn, "eunomia", actor="system")
        with transaction(ctx.conn):
            reviewer = people.get_user_by_email(ctx.conn, "reviewer@platform.example")
            people.set_membership(ctx.conn, reviewer["id"],
                                  people.get_team(ctx.conn, "acme-health")["id"])
    finally:
        ctx.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    require_or_skip(chromium_path() is not None, "PORTAL_REQUIRE_BROWSER",
                    "Chromium is not installed at /usr/bin/chromium")
    root = tmp_path_factory.mktemp("e2e")
    home, logs = root / "home", root / "logs"
    logs.mkdir()
    env = {"PORTAL_HOME": str(home), "PORTAL_ENV": "development", "PORTAL_QUERY_WORKERS": "1"}
    settings = Settings.from_env(env)
    settings.ensure_home()
    provider, issuer = devserver.start_provider("127.0.0.1", free_port(), settings.staff_group,
                                                log_path=logs / "provider.log")
    portal = None
    try:
        devserver.seed_and_bind(settings, issuer)
        _prepare_home(settings)
        port = free_port()
        secrets = root / "secrets.toml"
        devserver.write_secrets(secrets, devserver.secrets_toml(
            issuer, settings.secret("streamlit_cookie_secret").hex(), port))
        import os
        portal = devserver.start_portal(settings, "127.0.0.1", port, secrets,
                                        environ={**os.environ, **env},
                                        log_path=logs / "portal.log")
        yield Stack(settings, issuer, f"http://localhost:{port}", logs)
    finally:
        devserver.stop(portal)
        devserver.stop(provider)


@pytest.fixture(scope="session")
def browser(stack):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Shots:
    """Numbered screenshots of a journey into test-artifacts/e2e/<journey>/."""

    def __init__(self, journey: str) -> None:
        self.folder = ARTIFACTS / journey
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.count = 0

    def __call__(self, page, name: str) -> None:
        self.count += 1
        page.screenshot(path=str(self.folder / f"{self.count:02d}-{name}.png"), full_page=True)


def persona(email: str):
    return next(p for p in PERSONAS if p.email == email)


def new_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    return context.new_page()


def wait_idle(page) -> None:
    """Wait until Streamlit has finished the current run."""
    page.wait_for_selector("[data-testid='stApp']")
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"] button') &&"
        " !document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"]')")
    page.wait_for_timeout(300)


def sign_in(page, stack: Stack, email: str, shots: Shots | None = None) -> None:
    """Sign in through the development provider: the portal's Sign in button, then the
    persona's button on the provider's page, back to the portal's Home."""
    page.goto(stack.url)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/oauth2/authorize.*"))
    if shots:
        shots(page, f"provider-{persona(email).sub}")
    page.get_by_role("button", name=persona(email).sub, exact=True).click()
    page.wait_for_url(re.compile(re.escape(stack.url) + r"/?(home)?$"))
    page.get_by_role("heading", name="Home").wait_for()
    wait_idle(page)


def sign_out(page) -> None:
    """Sign out of the portal: straight back to its Sign in prompt (the development provider
    has no end-session page, see portal/devprovider.py)."""
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()


def go(page, stack: Stack, path: str, heading: str) -> None:
    page.goto(f"{stack.url}/{path}")
    page.get_by_role("heading", name=heading).first.wait_for()
    wait_idle(page)


EDITOR_FRAME = "iframe[title='code_editor.code_editor']"
EDITOR_TEXT = "#REACT_ACE_EDITOR .ace_content"


def code_editor(page):
    """The workspace's code editor (a component in its own iframe), once it has drawn."""
    frame = page.frame_locator(EDITOR_FRAME).first
    frame.locator(EDITOR_TEXT).wait_for()
    return frame


def replace_sql(page, sql: str) -> None:
    """Select everything in the code editor and put ``sql`` in its place (as one input, so no
    completion popup interferes)."""
    frame = code_editor(page)
    frame.locator(EDITOR_TEXT).click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(sql)
    page.keyboard.press("Escape")
