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


@pytest.fixture(scope="session", autouse=True)
def _postgres_templates():
    """Drop the session's PostgreSQL template databases at the end (if any were made)."""
    yield
    from tests import store_engines

    if store_engines._templates:
        store_engines.drop_templates()


@pytest.fixture
def store_engine() -> str:
    """The store engine of this test: PORTAL_TEST_ENGINE (default SQLite). Suites that must
    pass on both engines override it with ``params=ENGINES`` (tests/store_engines.py)."""
    from tests.store_engines import default_engine

    return default_engine()


def engine_env(engine: str, template: str | None = None) -> tuple[dict[str, str], str | None]:
    """Environment naming a fresh store on ``engine`` (a new PostgreSQL database, cloned from
    ``template`` if given) and the database name to drop afterwards (None for SQLite)."""
    if engine == "sqlite":
        return {}, None
    from tests.store_engines import new_store_url

    url, name = new_store_url(template)
    return {"PORTAL_DATABASE_URL": url}, name


@pytest.fixture
def settings(tmp_path, monkeypatch, store_engine) -> Settings:
    home = tmp_path / "home"
    extra, database = engine_env(store_engine)
    env = {"PORTAL_HOME": str(home), "PORTAL_ENV": "development", **extra}
    monkeypatch.setenv("PORTAL_HOME", str(home))
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    yield Settings.from_env(env)
    if database:
        from tests.store_engines import drop_database

        drop_database(database)


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


class TemplateHomes:
    """Homes with real releases, built once per session and store engine by a builder
    function; each test gets a copy (files, and a clone of the PostgreSQL database)."""

    def __init__(self, factory, build):
        self._factory, self._build, self._made = factory, build, {}

    def get(self, engine: str) -> tuple[object, str | None]:
        if engine not in self._made:
            from tests.store_engines import create_database, database_url, require_postgres

            home = self._factory.mktemp(f"template-{engine}") / "home"
            env = {"PORTAL_HOME": str(home), "PORTAL_ENV": "development"}
            database = None
            if engine == "postgresql":
                from tests.store_engines import migrated_template

                database = create_database(migrated_template())
                env["PORTAL_DATABASE_URL"] = database_url(require_postgres(), database)
                from tests import store_engines

                store_engines._templates[f"home-{database}"] = database
            self._build(Settings.from_env(env))
            self._made[engine] = (home, database)
        return self._made[engine]

    def copy_into(self, engine: str, settings: Settings) -> Settings:
        """``settings`` with the template's files copied into its home and, on PostgreSQL, a
        fresh clone of the template's database (replacing the empty one)."""
        import dataclasses

        home, database = self.get(engine)
        shutil.copytree(home, settings.home, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("raw", ".lock"))
        if database is None:
            return settings
        from tests.store_engines import drop_database, new_store_url

        url, name = new_store_url(database)
        if settings.database_url:
            drop_database(settings.database_url.rsplit("/", 1)[1])
        _clones.append(name)
        # processes started by the test read the store from the environment (the `settings`
        # fixture's monkeypatch restores the variable afterwards)
        os.environ["PORTAL_DATABASE_URL"] = url
        return dataclasses.replace(settings, database_url=url)


_clones: list[str] = []


@pytest.fixture(autouse=True)
def _drop_clones():
    yield
    if _clones:
        from tests.store_engines import drop_database

        while _clones:
            drop_database(_clones.pop())


def _build_bundled_releases(template: Settings) -> None:
    from portal.catalog.builder import build_release

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


@pytest.fixture(scope="session")
def release_templates(tmp_path_factory) -> TemplateHomes:
    """Homes with current releases of eunomia, wdbc and omop_synth (2,000 persons), built once
    per session and engine by the real release builder. Read-only: tests get copies."""
    return TemplateHomes(tmp_path_factory, _build_bundled_releases)


@pytest.fixture(scope="session")
def release_template_home(release_templates):
    """The SQLite template home (see `release_templates`)."""
    return release_templates.get("sqlite")[0]


@pytest.fixture
def released_settings(settings, store_engine, release_templates) -> Settings:
    """Like `settings`, but the home already holds current releases of eunomia, wdbc and
    omop_synth (2,000 persons): a copy of the session's template home (store, releases,
    secrets). Use `released_ctx` rather than `ctx` with it (the store must be copied before it
    is opened)."""
    return release_templates.copy_into(store_engine, settings)


@pytest.fixture
def released_ctx(released_settings):
    """A Context on a home holding real releases of the bundled datasets (see released_settings)."""
    context = Context.open(released_settings)
    yield context
    context.close()
