"""Shared test set-up: every test gets its own PORTAL_HOME."""

from __future__ import annotations

import os
import shutil
import sys

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


@pytest.fixture(autouse=True)
def _restore_main_module():
    """Streamlit's AppTest leaves the last page script installed as ``__main__``; processes
    started with the ``spawn`` method re-run ``__main__`` and would run that page. Put the
    real one back after every test."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


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


# --- Real releases for tests of every area (catalog section) ---------------------------------
# Building releases takes seconds, so the bundled datasets are built ONCE per test session into
# a template home; each test that asks for `released_settings` / `released_ctx` gets its own
# copy (store, releases and secrets, so the pseudonym salt matches the copied releases).
RELEASE_TEMPLATE_DATASETS = ("eunomia", "wdbc", "omop_synth")
RELEASE_TEMPLATE_SYNTH_PERSONS = 2_000


@pytest.fixture(scope="session")
def release_template_home(tmp_path_factory):
    """A home with current releases of eunomia, wdbc and omop_synth (2,000 persons), built once
    per session by the real release builder. Read-only for tests: copy it (`released_settings`)."""
    from portal.catalog.builder import build_release

    home = tmp_path_factory.mktemp("release-template") / "home"
    template = Settings.from_env({"PORTAL_HOME": str(home), "PORTAL_ENV": "development"})
    context = Context.open(template)
    try:
        for dataset_id in RELEASE_TEMPLATE_DATASETS:
            if not (template.datasets_dir / f"{dataset_id}.yaml").is_file():
                continue  # a dataset card not yet in the tree
            build_release(template, context.conn, dataset_id, actor="system",
                          persons=RELEASE_TEMPLATE_SYNTH_PERSONS
                          if dataset_id == "omop_synth" else None)
    finally:
        context.close()
    return home


@pytest.fixture
def released_settings(settings, release_template_home) -> Settings:
    """Like `settings`, but the home already holds current releases of eunomia, wdbc and
    omop_synth (2,000 persons): a copy of the session's template home (store file, releases,
    secrets). Use `released_ctx` rather than `ctx` with it (the store must be copied before it
    is opened)."""
    shutil.copytree(release_template_home, settings.home, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("raw", ".lock"))
    return settings


@pytest.fixture
def released_ctx(released_settings):
    """A Context on a home holding real releases of the bundled datasets (see released_settings)."""
    context = Context.open(released_settings)
    yield context
    context.close()
