"""Connections, migrations and transactions for the control-plane store, on either engine.

SQLite (a file under PORTAL_HOME, WAL) is the default; PostgreSQL is used when
``PORTAL_DATABASE_URL`` is set (see :mod:`portal.store.pg` and docs/decisions/0007). Both offer
the same API: ``conn.execute(sql_with_qmarks, params)``, rows readable by name and position,
:func:`transaction` holding the store's write lock from its start, and :func:`migrate`.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from portal.clock import utcnow  # the store's time text; callers import it from here too
from portal.config import Settings
from portal.store.dialect import migration_statements, split_statements

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
LOCK_WAIT_SECONDS = 600.0
# The one advisory lock every PostgreSQL writer takes (ASCII "PortalW").
PG_WRITE_LOCK_KEY = 0x506F7274616C57

IntegrityError = sqlite3.IntegrityError
OperationalError = sqlite3.OperationalError

_split_statements = split_statements  # kept for callers of the former private name


class StoreConnection(sqlite3.Connection):
    """A SQLite store connection that knows its engine, its installation's settings and how
    long a writer waits for the write lock."""

    engine = "sqlite"
    settings: Settings | None = None
    busy_timeout_ms: int = BUSY_TIMEOUT_MS
    lock_wait_seconds: float = LOCK_WAIT_SECONDS


def engine_of(conn: Any) -> str:
    """``"sqlite"`` or ``"postgresql"``."""
    return getattr(conn, "engine", "sqlite")


def connect(target: Path | str, settings: Settings | None = None) -> Any:
    """Open the store: a SQLite file path, or a ``postgresql://`` URL.

    SQLite: WAL, foreign keys, ``isolation_level=None`` (transactions are explicit, see
    :func:`transaction`). Raises sqlite3.OperationalError when the store cannot be reached."""
    busy = settings.store_busy_timeout_ms if settings else BUSY_TIMEOUT_MS
    wait = float(settings.store_lock_wait_seconds) if settings else LOCK_WAIT_SECONDS
    if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
        from portal.store.pg import PgConnection

        conn: Any = PgConnection(target, settings)
    else:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        _private_file(path)
        conn = sqlite3.connect(path, timeout=busy / 1000, isolation_level=None,
                               check_same_thread=False, factory=StoreConnection)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(busy)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.settings = settings
    conn.busy_timeout_ms, conn.lock_wait_seconds = busy, wait
    return conn


def _private_file(path: Path) -> None:
    """The SQLite store (and the WAL and shared-memory files SQLite gives the same mode) is
    the service's alone: created 0600, and an older store of ours made so on first open."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            info = part.stat() if part.exists() else None
            if info is not None and info.st_uid == os.geteuid() and info.st_mode & 0o077:
                os.chmod(part, info.st_mode & 0o700)
    except OSError:  # a read-only location: SQLite reports what matters when it opens it
        pass


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _begin(conn: Any) -> None:
    """Start a write transaction holding the store's write lock, waiting while another writer
    holds it (each wait bounded by the busy timeout, retried until the lock-wait deadline)."""
    deadline = time.monotonic() + getattr(conn, "lock_wait_seconds", LOCK_WAIT_SECONDS)
    attempt = 0
    while True:
        try:
            if engine_of(conn) == "postgresql":
                conn.executescript(
                    "BEGIN ISOLATION LEVEL READ COMMITTED;"
                    f" SET LOCAL lock_timeout = {int(conn.busy_timeout_ms)};"
                    f" SELECT pg_advisory_xact_lock({PG_WRITE_LOCK_KEY})")
            else:
                conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if engine_of(conn) == "postgresql" and conn.in_transaction:
                conn.execute("ROLLBACK")
            if not _is_busy(exc) or time.monotonic() >= deadline:
                raise
            attempt += 1
            log.warning("store busy (attempt %d), waiting for the write lock", attempt)
            time.sleep(min(1.0, 0.05 * attempt) * (0.5 + random.random()))  # noqa: S311


@contextmanager
def transaction(conn: Any) -> Iterator[Any]:
    """A write transaction holding the write lock from its start; commits or rolls back.

    SQLite: ``BEGIN IMMEDIATE``. PostgreSQL: READ COMMITTED plus one transaction-scoped
    advisory lock shared by every writer, so writers are serialised exactly as on SQLite
    (read-then-write sequences such as the audit chain append and budget checks stay atomic)
    while readers never wait. A busy store is retried, not reported (see :func:`_begin`).
    Raises sqlite3.OperationalError if the lock cannot be had before the lock-wait deadline."""
    _begin(conn)
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("portal.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        number = int(name.split("_", 1)[0])
        found.append((number, name, entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if len(numbers) != len(set(numbers)):
        raise RuntimeError(f"duplicate migration numbers: {numbers}")
    return found


def _expand(statement: str) -> list[str]:
    """Directives inside engine blocks: ``-- portal:include procrastinate-schema`` stands for
    the job engine's own schema, as shipped by the installed procrastinate."""
    if "-- portal:include procrastinate-schema" not in statement:
        return [statement]
    from procrastinate.schema import SchemaManager

    return [statement.replace("-- portal:include procrastinate-schema",
                              SchemaManager.get_schema())]


def migrate(conn: Any) -> list[str]:
    """Apply every migration not yet applied, each in its own transaction. Returns their names.

    Safe to call from several processes at once: the write lock serialises them and each
    re-checks what is applied after taking it."""
    engine = engine_of(conn)
    with transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " number INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    applied_now = []
    for number, name, sql in _migrations():
        with transaction(conn):
            done = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE number = ?", (number,)
            ).fetchone()
            if done:
                continue
            for statement in migration_statements(sql, engine):
                for part in _expand(statement):
                    conn.execute(part)
            conn.execute(
                "INSERT INTO schema_migrations (number, name, applied_at) VALUES (?, ?, ?)",
                (number, name, utcnow()),
            )
            applied_now.append(name)
    return applied_now


def open_store(settings: Settings) -> Any:
    """Open the store named by the settings (PostgreSQL URL or SQLite file under the home),
    creating folders and applying migrations."""
    settings.ensure_home()
    conn = connect(settings.store_target, settings)
    migrate(conn)
    return conn
