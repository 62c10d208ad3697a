"""The control-plane store: migrations and concurrent writers in separate processes."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

from portal.store.db import connect, migrate, transaction, utcnow


def _insert_teams(path: str, prefix: str, count: int) -> None:
    conn = connect(__import__("pathlib").Path(path))
    for i in range(count):
        with transaction(conn):
            conn.execute("INSERT INTO teams (slug, name, created_at) VALUES (?, ?, ?)",
                         (f"{prefix}-{i}", prefix, utcnow()))
    conn.close()


def test_migrations_apply_once_and_record_their_numbers(tmp_path):
    conn = connect(tmp_path / "portal.db")
    first = migrate(conn)
    again = migrate(conn)
    assert first and first[0].startswith("0001_")
    assert again == []
    numbers = [r[0] for r in conn.execute("SELECT number FROM schema_migrations ORDER BY number")]
    assert numbers == sorted(numbers) and len(numbers) == len(first)


def test_store_uses_write_ahead_logging(tmp_path):
    conn = connect(tmp_path / "portal.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_writers_in_two_processes_lose_nothing(tmp_path):
    path = tmp_path / "portal.db"
    migrate(connect(path))
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_insert_teams, args=(str(path), name, 150))
               for name in ("left", "right")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    conn = connect(path)
    counts = dict(conn.execute("SELECT name, count(*) FROM teams GROUP BY name").fetchall())
    assert counts == {"left": 150, "right": 150}


def test_a_failed_transaction_leaves_nothing_behind(tmp_path):
    conn = connect(tmp_path / "portal.db")
    migrate(conn)
    try:
        with transaction(conn):
            conn.execute("INSERT INTO teams (slug, name, created_at) VALUES ('x', 'x', 'now')")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert conn.execute("SELECT count(*) FROM teams").fetchone()[0] == 0


def test_concurrent_migration_from_two_processes_applies_each_once(tmp_path):
    path = tmp_path / "portal.db"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_migrate_only, args=(str(path),)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT number, count(*) FROM schema_migrations GROUP BY number").fetchall()
    assert rows and all(n == 1 for _, n in rows)


def _migrate_only(path: str) -> None:
    migrate(connect(__import__("pathlib").Path(path)))
