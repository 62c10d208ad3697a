"""Shared test set-up: every test gets its own PORTAL_HOME."""

from __future__ import annotations

import os
import shutil

import pytest

from portal.config import Settings
from portal.services.context import Context


def require_or_skip(condition: bool, env_var: str, reason: str) -> None:
    """Skip when something only some machines have is missing — unless CI set ``env_var``,
    which turns the skip into a failure (nothing may skip silently in CI)."""
    if condition:
        return
    if os.environ.get(env_var):
        pytest.fail(f"{reason} ({env_var} is set, so this may not be skipped)")
    pytest.skip(reason)


def chromium_path() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    home = tmp_path / "home"
    env = {"PORTAL_HOME": str(home), "PORTAL_ENV": "development"}
    monkeypatch.setenv("PORTAL_HOME", str(home))
    return Settings.from_env(env)


@pytest.fixture
def ctx(settings):
    context = Context.open(settings)
    yield context
    context.close()
