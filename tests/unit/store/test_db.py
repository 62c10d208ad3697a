"""The control-plane store on both engines: migrations, transactions, concurrent writers in
separate processes, a busy store, rows and errors — one suite, run on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import time
from pathlib import Path

import pytest

from portal import audit
from portal.config import Settings
from portal.store.db import IntegrityError, connect, migrate, transaction, utcnow
from tests.store_engines import ENGINES, create_database, database_url, drop_database


@pytest.fixture(params=ENGINES)
def store_engine(request) -> str:
    return request.param


@pytest.fixture
def target(store_engine, tmp_path):
    """An empty store (no migrations applied) on the engine under test."""
    if store_engine == "sqlite":
        yield str(tmp_path / "portal.db")
        return
    from tests.store_engines import require_postgres

    name = create_database()
    yield database_url(require_postgres(), name)
    drop_database(name)


def _open(target: str):
    return connect(target if target.startswith("postgresql://") else Path(target))


def _insert_teams(target: str, prefix: str, count: int) -> None:
    conn = _open(target)
    for i in range(count):
        with transaction(conn):
            conn.execute("INSERT INTO teams (slug, name, created_at) VALUES (?, ?, ?)",
                         (f"{prefix}-{i}", prefix, utcnow()))
    conn.close()


def _migrate_only(target: str) -> None:
    migrate(_open(target))


def _hold_write_lock(target: str, seconds: float, ready) -> None:
    conn = _open(target)
    with transaction(conn):
        conn.execute("INSERT INTO teams (slug, name, created_at) VALUES ('holder', 'h', 'now')")
        ready.set()
        time.sleep(seconds)
    conn.close()


def test_migrations_apply_once_and_record_their_numbers(target):
    conn = _open(target)
    first = migrate(conn)
    again = migrate(conn)
    assert first and first[0].startswith("0001_")
    assert again == []
    numbers = [r[0] for r in conn.execute("SELECT number FROM schema_migrations ORDER BY number")]
    assert numbers == sorted(numbers) and len(numbers) == len(first)


def test_sqlite_store_uses_write_ahead_logging(tmp_path):
    conn = connect(tmp_path / "portal.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_writers_in_two_processes_lose_nothing(target):
    migrate(_open(target))
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_insert_teams, args=(target, name, 150))
               for name in ("left", "right")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    conn = _open(target)
    counts = dict(conn.execute("SELECT name, count(*) FROM teams GROUP BY name").fetchall())
    assert counts == {"left": 150, "right": 150}


def test_a_failed_transaction_leaves_nothing_behind(target):
    conn = _open(target)
    migrate(conn)
    with pytest.raises(RuntimeError), transaction(conn):
        conn.execute("INSERT INTO teams (slug, name, created_at) VALUES ('x', 'x', 'now')")
        raise RuntimeError("boom")
    assert conn.execute("SELECT count(*) FROM teams").fetchone()[0] == 0
    assert not conn.in_transaction


def test_concurrent_migration_from_two_processes_applies_each_once(target):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_migrate_only, args=(target,)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    conn = _open(target)
    rows = conn.execute("SELECT number, count(*) FROM schema_migrations GROUP BY number").fetchall()
    assert rows and all(n == 1 for _, n in rows)


def test_a_writer_waits_out_a_lock_held_past_the_busy_timeout_and_loses_nothing(target,
                                                                               tmp_path):
    conn = connect(target if target.startswith("postgresql://") else Path(target),
                   Settings(home=tmp_path / "home"))  # audit events need the installation
    migrate(conn)
    conn.busy_timeout_ms = 200  # each wait gives up after 0.2 s; the holder keeps it 1.5 s
    if conn.engine == "sqlite":
        conn.execute("PRAGMA busy_timeout = 200")
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_write_lock, args=(target, 1.5, ready))
    holder.start()
    assert ready.wait(60)
    event_id = audit.record(conn, actor="staff@platform.example", action="test.busy",
                            decision="done")
    holder.join(60)
    assert holder.exitcode == 0
    assert [e.id for e in audit.list_events(conn, action="test.busy")] == [event_id]
    assert conn.execute("SELECT count(*) FROM teams WHERE slug = 'holder'").fetchone()[0] == 1
    assert audit.verify(conn).ok


def test_a_writer_gives_up_with_a_clear_error_after_the_lock_wait_deadline(target):
    conn = _open(target)
    migrate(conn)
    conn.busy_timeout_ms, conn.lock_wait_seconds = 100, 0.3
    if conn.engine == "sqlite":
        conn.execute("PRAGMA busy_timeout = 100")
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_write_lock, args=(target, 3, ready))
    holder.start()
    assert ready.wait(60)
    with pytest.raises(sqlite3.OperationalError, match="locked"), transaction(conn):
        pass
    holder.join(60)
    assert not conn.in_transaction


def test_rows_read_by_name_and_position_and_as_dicts(target):
    conn = _open(target)
    migrate(conn)
    with transaction(conn):
        team_id = conn.execute(
            "INSERT INTO teams (slug, name, created_at) VALUES (?, ?, ?) RETURNING id",
            ("acme", "Acme's ? 100%", "2026-01-01T00:00:00Z")).fetchone()[0]
    row = conn.execute("SELECT id, slug, name FROM teams WHERE slug = ?", ("acme",)).fetchone()
    assert row[0] == row["id"] == row["ID"] == team_id
    assert dict(row) == {"id": team_id, "slug": "acme", "name": "Acme's ? 100%"}
    # '?' and '%' inside a literal are text, not placeholders
    assert conn.execute("SELECT count(*) FROM teams WHERE name LIKE '%''s ? 1%' AND slug = ?",
                        ("acme",)).fetchone()[0] == 1
    assert conn.execute("UPDATE teams SET name = 'x' WHERE slug = 'none'").fetchone() is None
    assert tuple(conn.execute("SELECT ? IS NULL, ?", (None, True)).fetchone()) == (1, 1)


def test_a_constraint_violation_is_an_integrity_error_and_rolls_back(target):
    conn = _open(target)
    migrate(conn)
    with transaction(conn):
        conn.execute("INSERT INTO teams (slug, name, created_at) VALUES ('a', 'a', 'now')")
    with pytest.raises(IntegrityError), transaction(conn):
        conn.execute("INSERT INTO teams (slug, name, created_at) VALUES ('b', 'b', 'now')")
        conn.execute("INSERT INTO teams (slug, name, created_at) VALUES ('a', 'a', 'now')")
    assert [r[0] for r in conn.execute("SELECT slug FROM teams")] == ["a"]


def test_portable_migration_shapes_apply_on_both_engines(target, monkeypatch):
    """What later migrations may use: CREATE TABLE / INDEX / ALTER TABLE ADD COLUMN with
    INTEGER, TEXT, REAL and BLOB columns and `id INTEGER PRIMARY KEY`."""
    from portal.store import db

    extra = (
        "-- a later migration\n"
        "CREATE TABLE ledger (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL,"
        " epsilon REAL NOT NULL, note TEXT DEFAULT 'INTEGER REAL; -- not a type', blob BLOB);\n"
        "CREATE INDEX ledger_user ON ledger(user_id) WHERE epsilon > 0;\n"
        "ALTER TABLE ledger ADD COLUMN spent_at REAL;\n")
    real = db._migrations
    monkeypatch.setattr(db, "_migrations", lambda: [*real(), (9999, "9999_extra.sql", extra)])
    conn = _open(target)
    assert "9999_extra.sql" in migrate(conn)
    with transaction(conn):
        new_id = conn.execute(
            "INSERT INTO ledger (user_id, epsilon, blob, spent_at) VALUES (?, ?, ?, ?)"
            " RETURNING id", (2**40, 0.25, b"\x00\xff", 1.5)).fetchone()[0]
    row = conn.execute("SELECT * FROM ledger WHERE id = ?", (new_id,)).fetchone()
    assert (row["user_id"], row["epsilon"], bytes(row["blob"]), row["spent_at"]) == (
        2**40, 0.25, b"\x00\xff", 1.5)
    assert row["note"] == "INTEGER REAL; -- not a type"


def test_the_sqlite_store_and_the_private_folders_are_the_services_alone(tmp_path):
    import os
    import stat

    from portal.store.db import open_store

    settings = Settings(home=tmp_path / "home")
    older = settings.home / "portal.db"
    older.parent.mkdir(parents=True)
    sqlite3.connect(older).execute("CREATE TABLE t (x)").connection.close()
    os.chmod(older, 0o644)  # a store made before this rule
    conn = open_store(settings)
    conn.execute("SELECT 1")
    for part in (older, older.with_name("portal.db-wal"), older.with_name("portal.db-shm")):
        if part.exists():
            assert stat.S_IMODE(part.stat().st_mode) & 0o077 == 0, part.name
    conn.close()
    for folder in (settings.releases_dir, settings.extracts_dir, settings.models_dir,
                   settings.reports_dir, settings.secrets_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder.name
