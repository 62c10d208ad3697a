"""The append-only audit log, chained with HMAC under a key the store does not hold."""

from __future__ import annotations

import hashlib
import threading

import pytest

from portal import audit
from portal.store.db import IntegrityError, connect, engine_of, transaction
from tests.store_engines import ENGINES


@pytest.fixture(params=ENGINES)
def store_engine(request) -> str:
    return request.param


def _events(ctx, n=3):
    return [audit.record(ctx.conn, actor=f"user{i}@x.example", action="query.run",
                         decision="allowed", team="acme-health", target="dataset:eunomia",
                         details={"rows": i}) for i in range(n)]


def _rechain(conn, key: bytes, start_id: int) -> None:
    """What an attacker does after editing an event: recompute every MAC from it on with
    ``key`` (a guessed key, or the real one if they hold it)."""
    prev = conn.execute("SELECT hash FROM audit_events WHERE id = ?",
                        (start_id - 1,)).fetchone()
    prev_mac = prev["hash"] if prev else audit.GENESIS
    rows = conn.execute("SELECT * FROM audit_events WHERE id >= ? ORDER BY id",
                        (start_id,)).fetchall()
    for row in rows:
        fields = {f: row[f] for f in audit._FIELDS}
        mac = audit.event_mac(key, row["id"], prev_mac, fields)
        conn.execute("UPDATE audit_events SET prev_hash = ?, hash = ? WHERE id = ?",
                     (prev_mac, mac, row["id"]))
        prev_mac = mac


def test_a_fresh_chain_verifies_in_full_and_incrementally(ctx):
    _events(ctx)
    result = audit.verify(ctx.conn)
    assert result.ok and result.checked == 3 and result.events == 3 and result.keyed_from == 1
    assert audit.verify_new(ctx.conn).ok


def test_update_and_delete_are_refused_by_the_store(ctx):
    ids = _events(ctx)
    with pytest.raises(IntegrityError, match="append-only"):
        ctx.conn.execute("UPDATE audit_events SET decision = 'denied' WHERE id = ?", (ids[0],))
    with pytest.raises(IntegrityError, match="append-only"):
        ctx.conn.execute("DELETE FROM audit_events WHERE id = ?", (ids[0],))


def _bypass_triggers(conn):
    on = " ON audit_events" if engine_of(conn) == "postgresql" else ""
    conn.execute(f"DROP TRIGGER audit_events_no_update{on}")
    conn.execute(f"DROP TRIGGER audit_events_no_delete{on}")


def test_an_edited_event_is_detected(ctx):
    ids = _events(ctx)
    _bypass_triggers(ctx.conn)
    ctx.conn.execute("UPDATE audit_events SET decision = 'denied' WHERE id = ?", (ids[1],))
    result = audit.verify(ctx.conn)
    assert not result.ok and result.first_bad_id == ids[1] and "altered" in result.problem


def test_a_deleted_event_is_detected(ctx):
    ids = _events(ctx, 4)
    _bypass_triggers(ctx.conn)
    ctx.conn.execute("DELETE FROM audit_events WHERE id = ?", (ids[1],))
    result = audit.verify(ctx.conn)
    assert not result.ok and result.first_bad_id == ids[2]


def test_an_edit_with_every_later_mac_recomputed_without_the_key_is_detected(ctx):
    ids = _events(ctx, 5)
    _bypass_triggers(ctx.conn)
    ctx.conn.execute("UPDATE audit_events SET decision = 'denied' WHERE id = ?", (ids[1],))
    _rechain(ctx.conn, b"a guessed key".ljust(32, b"\0"), ids[1])
    result = audit.verify(ctx.conn)
    assert not result.ok and result.first_bad_id == ids[1] and "MAC" in result.problem


def test_an_edit_rechained_as_plain_sha256_is_detected(ctx):
    """The old, unkeyed chain could be recomputed by anyone; a keyed chain cannot be
    downgraded to it."""
    ids = _events(ctx, 3)
    _bypass_triggers(ctx.conn)
    prev = audit.GENESIS
    for row in ctx.conn.execute("SELECT * FROM audit_events ORDER BY id").fetchall():
        fields = {f: row[f] for f in audit._FIELDS} | (
            {"decision": "denied"} if row["id"] == ids[2] else {})
        digest = audit._event_hash(prev, fields)
        ctx.conn.execute("UPDATE audit_events SET decision = ?, prev_hash = ?, hash = ?,"
                         " chain = 1 WHERE id = ?", (fields["decision"], prev, digest,
                                                     row["id"]))
        prev = digest
    result = audit.verify(ctx.conn)
    assert not result.ok and result.first_bad_id == ids[0] and "after the audit key" in result.problem


def test_a_downgrade_that_also_moves_the_migration_date_is_detected_by_a_checkpoint(ctx):
    from portal import audit_checkpoints

    _events(ctx, 3)
    checkpoint = audit_checkpoints.sign(ctx.settings, audit.verify(ctx.conn), "2030-01-01T00:00:00Z")
    audit_checkpoints.write(ctx.settings, checkpoint)
    _bypass_triggers(ctx.conn)
    ctx.conn.execute("UPDATE schema_migrations SET applied_at = '2999-01-01T00:00:00Z'")
    ctx.conn.execute("DELETE FROM audit_verified")  # the attacker holds the store
    prev = audit.GENESIS
    for row in ctx.conn.execute("SELECT * FROM audit_events ORDER BY id").fetchall():
        digest = audit._event_hash(prev, {f: row[f] for f in audit._FIELDS})
        ctx.conn.execute("UPDATE audit_events SET prev_hash = ?, hash = ?, chain = 1"
                         " WHERE id = ?", (prev, digest, row["id"]))
        prev = digest
    result = audit.verify(ctx.conn)
    assert not result.ok and "rewritten" in result.problem


def test_removing_the_newest_events_passes_without_a_checkpoint_and_says_so(ctx):
    """The stated limit: with no checkpoint and no earlier verification, a shorter log is a
    valid log. The result says that this case is not covered."""
    ids = _events(ctx, 4)
    _bypass_triggers(ctx.conn)
    ctx.conn.execute("DELETE FROM audit_events WHERE id >= ?", (ids[2],))
    result = audit.verify(ctx.conn)
    assert result.ok and any("no signed checkpoint" in n for n in result.notes)


def test_removing_events_already_verified_is_detected_by_the_remembered_head(ctx):
    ids = _events(ctx, 4)
    assert audit.verify_new(ctx.conn).ok
    _bypass_triggers(ctx.conn)
    ctx.conn.execute("DELETE FROM audit_events WHERE id >= ?", (ids[2],))
    for check in (audit.verify_new, audit.verify):
        result = check(ctx.conn)
        assert not result.ok and "removed" in result.problem


def test_incremental_verification_checks_only_new_events(ctx):
    _events(ctx, 5)
    assert audit.verify_new(ctx.conn).checked == 5  # the first time: everything
    _events(ctx, 2)
    result = audit.verify_new(ctx.conn)
    assert result.ok and result.checked == 2 and result.events == 7 and not result.full
    assert audit.verify_new(ctx.conn).checked == 0


def test_an_edit_inside_the_verified_part_needs_the_full_verification(ctx):
    ids = _events(ctx, 5)
    assert audit.verify_new(ctx.conn).ok
    _bypass_triggers(ctx.conn)
    ctx.conn.execute("UPDATE audit_events SET reason = 'forged' WHERE id = ?", (ids[1],))
    assert audit.verify_new(ctx.conn).ok  # incremental: by design, not re-read
    result = audit.verify(ctx.conn)
    assert not result.ok and result.first_bad_id == ids[1]


def test_an_edit_of_the_last_verified_event_is_detected_incrementally(ctx):
    ids = _events(ctx, 3)
    assert audit.verify_new(ctx.conn).ok
    _bypass_triggers(ctx.conn)
    ctx.conn.execute("UPDATE audit_events SET reason = 'forged' WHERE id = ?", (ids[-1],))
    result = audit.verify_new(ctx.conn)
    assert not result.ok and result.first_bad_id == ids[-1]


def test_a_new_event_that_does_not_follow_the_verified_head_is_detected(ctx):
    ids = _events(ctx, 3)
    assert audit.verify_new(ctx.conn).ok
    new = _events(ctx, 1)[0]
    _bypass_triggers(ctx.conn)
    ctx.conn.execute("UPDATE audit_events SET prev_hash = ? WHERE id = ?", ("f" * 64, new))
    result = audit.verify_new(ctx.conn)
    assert not result.ok and result.first_bad_id == new and ids


@pytest.mark.parametrize("store_engine", ["sqlite"])  # reads the store file itself
def test_the_key_lives_in_the_secrets_folder_never_in_the_store(ctx):
    _events(ctx)
    key = audit.chain_key(ctx.conn)
    assert (ctx.settings.secrets_dir / audit.KEY_NAME).read_bytes() == key
    ctx.conn.execute("PRAGMA wal_checkpoint(FULL)")
    stored = ctx.settings.store_path.read_bytes()
    assert key not in stored and key.hex().encode() not in stored


def test_a_connection_without_its_installation_cannot_write_events(ctx):
    bare = connect(ctx.settings.store_target)
    with pytest.raises(RuntimeError, match="installation's key"):
        audit.record(bare, actor="a", action="x", decision="done")
    bare.close()


def test_concurrent_writers_never_fork_the_chain(ctx):
    errors = []

    def writer(n: int) -> None:
        conn = connect(ctx.settings.store_target, ctx.settings)
        try:
            for i in range(25):
                audit.record(conn, actor=f"w{n}", action="x", decision="done", details={"i": i})
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = audit.verify(ctx.conn)
    assert result.ok and result.events == 100


def test_text_that_is_not_valid_unicode_is_stored_escaped(ctx):
    event_id = audit.record(ctx.conn, actor="a\udcff", action="x", decision="rejected",
                            details={"arg": "b\udcfe"})
    event = audit.list_events(ctx.conn)[0]
    assert event.id == event_id and event.actor == "a\\udcff" and event.details["arg"] == "b\\udcfe"
    assert audit.verify(ctx.conn).ok


def test_events_join_the_callers_transaction_and_roll_back_with_it(ctx):
    with pytest.raises(RuntimeError), transaction(ctx.conn):
        audit.record(ctx.conn, actor="a", action="x", decision="done")
        raise RuntimeError("the write failed")
    assert audit.list_events(ctx.conn) == []


def test_watch_sees_events_and_any_stored_ignores_rolled_back_ones(ctx):
    with audit.watch() as outer:
        with audit.watch() as inner, pytest.raises(RuntimeError), transaction(ctx.conn):
            audit.record(ctx.conn, actor="a", action="x", decision="done")
            raise RuntimeError("rolled back")
        assert len(inner) == 1 and not audit.any_stored(ctx.conn, inner)
        audit.record(ctx.conn, actor="a", action="y", decision="done")
    assert len(outer) == 2 and audit.any_stored(ctx.conn, outer)


def test_list_filters_by_actor_action_and_decision(ctx):
    _events(ctx)
    audit.record(ctx.conn, actor="staff@platform.example", action="grant.revoke",
                 decision="done", reason="ended")
    assert [e.action for e in audit.list_events(ctx.conn, actor="staff@platform.example")] == [
        "grant.revoke"]
    assert len(audit.list_events(ctx.conn, action="query.run", decision="allowed")) == 3
    assert audit.list_events(ctx.conn, target_prefix="dataset:eu")[0].target == "dataset:eunomia"


def test_list_limits_beyond_sqlite_integers_are_clamped(ctx):
    _events(ctx)
    assert len(audit.list_events(ctx.conn, limit=10**30)) == 3
    assert len(audit.list_events(ctx.conn, limit=-(10**30))) == 1


def test_unknown_decisions_are_a_programming_error(ctx):
    with pytest.raises(ValueError):
        audit.record(ctx.conn, actor="a", action="x", decision="maybe")


def test_the_event_mac_depends_on_the_key_position_and_every_field(ctx):
    fields = {f: "v" for f in audit._FIELDS}
    base = audit.event_mac(b"k" * 32, 7, audit.GENESIS, fields)
    assert base != audit.event_mac(b"j" * 32, 7, audit.GENESIS, fields)
    assert base != audit.event_mac(b"k" * 32, 8, audit.GENESIS, fields)
    for name in audit._FIELDS:
        assert base != audit.event_mac(b"k" * 32, 7, audit.GENESIS, fields | {name: "w"})
    assert base != hashlib.sha256(base.encode()).hexdigest()


def test_ids_stay_gapless_after_a_rolled_back_event(ctx):
    first = audit.record(ctx.conn, actor="a", action="x", decision="done")
    with pytest.raises(RuntimeError), transaction(ctx.conn):
        audit.record(ctx.conn, actor="a", action="x", decision="done")
        raise RuntimeError("the write failed")
    second = audit.record(ctx.conn, actor="a", action="x", decision="done")
    assert second == first + 1
    assert audit.verify(ctx.conn).ok


@pytest.mark.parametrize("store_engine", ["postgresql"])  # SQLite has no TRUNCATE
def test_truncating_the_log_is_refused_on_postgresql(ctx):
    _events(ctx)
    with pytest.raises(IntegrityError, match="append-only"):
        ctx.conn.execute("TRUNCATE audit_events")
