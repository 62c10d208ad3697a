"""Both store engines for tests: SQLite files and throw-away PostgreSQL databases.

PostgreSQL tests need ``PORTAL_TEST_POSTGRES_URL``: a URL of a role allowed to create databases
(CI's .ci/run creates one). Without it they skip, unless ``PORTAL_REQUIRE_POSTGRES`` is set,
which turns the skip into a failure. Each test gets its own database, cloned from a migrated
template made once per session, and dropped afterwards; names are unique per run.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

ENGINES = ("sqlite", "postgresql")
ADMIN_URL_VAR = "PORTAL_TEST_POSTGRES_URL"
REQUIRE_VAR = "PORTAL_REQUIRE_POSTGRES"
_RUN = uuid.uuid4().hex[:8]
_templates: dict[str, str] = {}


def admin_url() -> str | None:
    return os.environ.get(ADMIN_URL_VAR) or None


def require_postgres() -> str:
    """The admin URL, or skip (fail when PORTAL_REQUIRE_POSTGRES is set)."""
    from tests.conftest import require_or_skip

    url = admin_url()
    reachable = url is not None and _reachable(url)
    require_or_skip(reachable, REQUIRE_VAR,
                    f"PostgreSQL is not available (set {ADMIN_URL_VAR} to a role that may "
                    f"create databases)")
    assert url is not None
    return url


def _reachable(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def database_url(admin: str, name: str) -> str:
    parts = urlsplit(admin)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _admin_execute(admin: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql)


def create_database(template: str | None = None) -> str:
    """A new empty (or ``template``-cloned) database; returns its name."""
    admin = require_postgres()
    name = f"portal_t_{_RUN}_{uuid.uuid4().hex[:10]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    _admin_execute(admin, f'CREATE DATABASE "{name}"{clause}')
    return name


def drop_database(name: str) -> None:
    """Drop a database this module created (never any other)."""
    if not name.startswith(f"portal_t_{_RUN}_"):
        raise ValueError(f"refusing to drop a database this run did not create: {name}")
    admin = require_postgres()
    _admin_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrated_template() -> str:
    """A database with every migration applied, made once per session (a template to clone)."""
    if "migrated" not in _templates:
        from portal.store.db import connect, migrate

        name = create_database()
        conn = connect(database_url(require_postgres(), name))
        try:
            migrate(conn)
        finally:
            conn.close()
        _templates["migrated"] = name
    return _templates["migrated"]


def new_store_url(template: str | None = None) -> tuple[str, str]:
    """(URL, name) of a fresh migrated database (cloned from ``template`` if given)."""
    name = create_database(template or migrated_template())
    return database_url(require_postgres(), name), name


def drop_templates() -> None:
    for name in list(_templates.values()):
        drop_database(name)
    _templates.clear()


def default_engine() -> str:
    """The engine for tests that are not parametrised: PORTAL_TEST_ENGINE, else SQLite."""
    engine = os.environ.get("PORTAL_TEST_ENGINE", "sqlite")
    if engine not in ENGINES:
        raise ValueError(f"PORTAL_TEST_ENGINE must be one of {ENGINES}")
    return engine
