"""Signed checkpoints anchor the audit chain's head outside the store; stores made before the
audit key keep verifying and are sealed by the first keyed event."""

from __future__ import annotations

import json
import sqlite3

import pytest

from portal import audit, audit_checkpoints
from portal.config import Settings
from portal.store import db, dialect
from tests.unit.test_audit import _bypass_triggers, _events, _rechain


def _checkpoint(ctx, at="2030-01-01T00:00:00Z"):
    result = audit.verify(ctx.conn)
    assert result.ok
    return audit_checkpoints.write(ctx.settings, audit_checkpoints.sign(ctx.settings, result, at))


def _truncate(conn, from_id):
    _bypass_triggers(conn)
    conn.execute("DELETE FROM audit_events WHERE id >= ?", (from_id,))
    conn.execute("DELETE FROM audit_verified")  # an attacker holding the store does this too


def test_a_checkpoint_is_signed_and_verifies(ctx):
    _events(ctx, 3)
    path = _checkpoint(ctx)
    cp = audit_checkpoints.load(ctx.settings, path)
    assert (cp.last_id, cp.events, cp.keyed_from) == (3, 3, 1)
    result = audit.verify(ctx.conn)
    assert result.ok and result.checkpoints == 1
    assert not any("no signed checkpoint" in n for n in result.notes)


def test_removing_the_newest_events_is_detected_against_a_checkpoint(ctx):
    ids = _events(ctx, 5)
    _checkpoint(ctx)
    _truncate(ctx.conn, ids[3])
    for check in (audit.verify, audit.verify_new):
        result = check(ctx.conn)
        assert not result.ok and "newest events were removed" in result.problem


def test_truncation_is_detected_against_an_exported_checkpoint_when_the_anchors_are_gone(ctx,
                                                                                       tmp_path):
    ids = _events(ctx, 5)
    exported = tmp_path / "exported.json"
    exported.write_bytes(_checkpoint(ctx).read_bytes())
    for path in audit_checkpoints.anchored(ctx.settings):
        path.unlink()
    _truncate(ctx.conn, ids[2])
    assert audit.verify(ctx.conn).ok  # nothing left to compare with...
    result = audit.verify(ctx.conn, [exported])
    assert not result.ok and "newest events were removed" in result.problem


def test_a_rewrite_with_the_real_key_before_a_checkpoint_is_detected(ctx):
    ids = _events(ctx, 5)
    _checkpoint(ctx)
    _bypass_triggers(ctx.conn)
    ctx.conn.execute("DELETE FROM audit_verified")
    ctx.conn.execute("UPDATE audit_events SET reason = 'forged' WHERE id = ?", (ids[1],))
    _rechain(ctx.conn, audit.chain_key(ctx.conn), ids[1])
    result = audit.verify(ctx.conn)
    assert not result.ok and "rewritten" in result.problem


def test_a_rewrite_with_the_real_key_after_the_last_checkpoint_is_not_detected(ctx):
    """The stated limit (docs/security-properties.md): whoever holds the key and the store can
    rewrite history since the last exported checkpoint."""
    ids = _events(ctx, 5)
    _checkpoint(ctx)
    later = _events(ctx, 3)
    _bypass_triggers(ctx.conn)
    ctx.conn.execute("DELETE FROM audit_verified")
    ctx.conn.execute("UPDATE audit_events SET reason = 'forged' WHERE id = ?", (later[1],))
    _rechain(ctx.conn, audit.chain_key(ctx.conn), later[1])
    assert audit.verify(ctx.conn).ok and ids


def test_a_changed_checkpoint_file_is_refused(ctx):
    _events(ctx, 3)
    path = _checkpoint(ctx)
    document = json.loads(path.read_text())
    document["last_id"] = 2
    path.write_text(json.dumps(document))
    result = audit.verify(ctx.conn)
    assert not result.ok and "signature" in result.problem


def test_a_checkpoint_of_another_installation_is_refused(ctx, tmp_path):
    _events(ctx, 3)
    other = Settings.from_env({"PORTAL_HOME": str(tmp_path / "other")})
    document = audit_checkpoints.sign(other, audit.verify(ctx.conn), "2030-01-01T00:00:00Z")
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps(document))
    with pytest.raises(audit_checkpoints.CheckpointError, match="another installation"):
        audit_checkpoints.load(ctx.settings, foreign)
    assert not audit.verify(ctx.conn, [foreign]).ok


@pytest.mark.parametrize("content", [b"not json", b"[]", b'{"format": "something else"}',
                                     b"x" * (audit_checkpoints.MAX_BYTES + 1)])
def test_files_that_are_not_checkpoints_are_refused(ctx, tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(audit_checkpoints.CheckpointError):
        audit_checkpoints.load(ctx.settings, path)


def test_the_checkpoint_key_is_not_the_receipts_key(ctx):
    from sandbox import receipts

    assert audit_checkpoints.KEY_NAME != receipts.KEY_NAME
    assert ctx.settings.secret(audit_checkpoints.KEY_NAME) != ctx.settings.secret(
        receipts.KEY_NAME)


def test_secrets_and_anchors_can_live_outside_the_home(tmp_path):
    env = {"PORTAL_HOME": str(tmp_path / "home"), "PORTAL_SECRETS_DIR": str(tmp_path / "keys"),
           "PORTAL_AUDIT_ANCHOR_DIR": str(tmp_path / "anchors")}
    settings = Settings.from_env(env)
    conn = db.open_store(settings)
    audit.record(conn, actor="a", action="x", decision="done")
    path = audit_checkpoints.write(settings, audit_checkpoints.sign(
        settings, audit.verify(conn), "2030-01-01T00:00:00Z"))
    assert (tmp_path / "keys" / audit.KEY_NAME).exists() and path.parent == tmp_path / "anchors"
    assert not (tmp_path / "home" / "secrets" / audit.KEY_NAME).exists()
    result = audit.verify(conn)
    assert result.ok and not any("inside PORTAL_HOME" in n for n in result.notes)
    conn.close()


# --- stores made before the audit key ---------------------------------------------------------
def _legacy_store(settings: Settings, events: int) -> None:
    """A store as the portal left it before migration 0008: SHA-256 chained events."""
    settings.ensure_home()
    conn = sqlite3.connect(settings.store_path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("CREATE TABLE schema_migrations (number INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                 " applied_at TEXT NOT NULL)")
    for number, name, sql in db._migrations():
        if number >= 8:
            continue
        for statement in dialect.migration_statements(sql, "sqlite"):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, '2025-01-01T00:00:00Z')",
                     (number, name))
    prev = audit.GENESIS
    for i in range(events):
        fields = {"at": f"2025-06-01T00:00:0{i}Z", "actor": "old@x.example", "team": None,
                  "action": "legacy", "target": None, "decision": "done", "reason": None,
                  "details": "{}"}
        digest = audit._event_hash(prev, fields)
        conn.execute("INSERT INTO audit_events (at, actor, team, action, target, decision,"
                     " reason, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (*fields.values(), prev, digest))
        prev = digest
    conn.close()


def test_a_store_from_before_the_key_keeps_verifying_and_continues_keyed(settings):
    _legacy_store(settings, 4)
    conn = db.open_store(settings)
    result = audit.verify(conn)
    assert result.ok and result.keyed_from is None
    assert any("predate the audit key" in n for n in result.notes)
    new_id = audit.record(conn, actor="a", action="x", decision="done")
    row = conn.execute("SELECT chain FROM audit_events WHERE id = ?", (new_id,)).fetchone()
    result = audit.verify(conn)
    assert new_id == 5 and row["chain"] == audit.KEYED_CHAIN
    assert result.ok and result.keyed_from == 5 and result.events == 5
    conn.close()


def test_the_first_keyed_event_seals_the_events_before_the_key(settings):
    _legacy_store(settings, 4)
    conn = db.open_store(settings)
    audit.record(conn, actor="a", action="x", decision="done")
    _bypass_triggers(conn)
    conn.execute("DELETE FROM audit_verified")
    prev = audit.GENESIS  # edit event 2 and recompute every unkeyed hash: anyone can do that
    for row in conn.execute("SELECT * FROM audit_events WHERE chain = 1 ORDER BY id").fetchall():
        fields = {f: row[f] for f in audit._FIELDS} | (
            {"reason": "forged"} if row["id"] == 2 else {})
        digest = audit._event_hash(prev, fields)
        conn.execute("UPDATE audit_events SET reason = ?, prev_hash = ?, hash = ? WHERE id = ?",
                     (fields["reason"], prev, digest, row["id"]))
        prev = digest
    result = audit.verify(conn)
    assert not result.ok and result.first_bad_id == 5 and "does not follow" in result.problem
    conn.close()


def test_an_unkeyed_event_after_keyed_ones_is_refused(ctx):
    ids = _events(ctx, 3)
    _bypass_triggers(ctx.conn)
    row = ctx.conn.execute("SELECT * FROM audit_events WHERE id = ?", (ids[2],)).fetchone()
    digest = audit._event_hash(row["prev_hash"], {f: row[f] for f in audit._FIELDS})
    ctx.conn.execute("UPDATE audit_events SET chain = 1, hash = ? WHERE id = ?", (digest, ids[2]))
    result = audit.verify(ctx.conn)
    assert not result.ok and result.first_bad_id == ids[2]


def test_a_fifo_given_as_a_checkpoint_is_refused_without_blocking(ctx, tmp_path):
    import os

    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(audit_checkpoints.CheckpointError, match="not a regular file"):
        audit_checkpoints.load(ctx.settings, fifo)
