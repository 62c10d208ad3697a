"""Connections, migrations and transactions for the control-plane store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from portal.config import Settings

BUSY_TIMEOUT_MS = 30_000


def utcnow() -> str:
    """Current UTC time as ISO-8601 text with seconds precision and a Z suffix."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class StoreConnection(sqlite3.Connection):
    """A store connection that knows its installation's settings: the audit log keys its chain
    with a secret of the installation (``portal.audit``), which never lives in the store."""

    settings: Settings | None = None


def connect(path: Path, settings: Settings | None = None) -> StoreConnection:
    """Open the store file with WAL, foreign keys and a generous busy timeout.

    ``isolation_level=None``: transactions are explicit (see :func:`transaction`), so that a
    writer takes the write lock up front (BEGIN IMMEDIATE) instead of failing on upgrade.
    ``settings``: the installation the store belongs to (needed to write audit events)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False, factory=StoreConnection)
    conn.settings = settings
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction holding the write lock from its start; commits or rolls back."""
    conn.execute("BEGIN IMMEDIATE")
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


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply every migration not yet applied, each in its own transaction. Returns their names.

    Safe to call from several processes at once: the write lock serialises them and each
    re-checks what is applied after taking it."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " number INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    applied_now = []
    for number, name, sql in _migrations():
        with transaction(conn):
            done = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE number = ?", (number,)
            ).fetchone()
            if done:
                continue
            for statement in _split_statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (number, name, applied_at) VALUES (?, ?, ?)",
                (number, name, utcnow()),
            )
            applied_now.append(name)
    return applied_now


def _split_statements(sql: str) -> list[str]:
    statements, buffer = [], []
    for line in sql.splitlines():
        if line.strip().startswith("--"):
            continue
        buffer.append(line)
        if sqlite3.complete_statement("\n".join(buffer)):
            statements.append("\n".join(buffer).strip())
            buffer = []
    tail = "\n".join(buffer).strip()
    if tail:
        statements.append(tail)
    return [s for s in statements if s]


def open_store(settings: Settings) -> sqlite3.Connection:
    """Open the store under the settings' home, creating folders and applying migrations."""
    settings.ensure_home()
    conn = connect(settings.store_path, settings)
    migrate(conn)
    return conn
