"""The append-only, hash-chained audit log, on both store engines."""

from __future__ import annotations

import pytest

from portal import audit
from portal.store.db import IntegrityError, engine_of, transaction
from tests.store_engines import ENGINES


@pytest.fixture(params=ENGINES)
def store_engine(request) -> str:
    return request.param


def _events(ctx, n=3):
    return [audit.record(ctx.conn, actor=f"user{i}@x.example", action="query.run",
                         decision="allowed", team="acme-health", target="dataset:eunomia",
                         details={"rows": i}) for i in range(n)]


def test_a_fresh_chain_verifies(ctx):
    _events(ctx)
    result = audit.verify(ctx.conn)
    assert result.ok and result.checked == 3


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


def test_a_rehashed_edit_is_still_detected_by_the_next_event(ctx):
    ids = _events(ctx)
    _bypass_triggers(ctx.conn)
    row = ctx.conn.execute("SELECT * FROM audit_events WHERE id = ?", (ids[0],)).fetchone()
    fields = {f: row[f] for f in audit._FIELDS} | {"reason": "forged"}
    forged_hash = audit._event_hash(row["prev_hash"], fields)
    ctx.conn.execute("UPDATE audit_events SET reason = 'forged', hash = ? WHERE id = ?",
                     (forged_hash, ids[0]))
    result = audit.verify(ctx.conn)
    assert not result.ok and result.first_bad_id == ids[1]


def test_events_join_the_callers_transaction_and_roll_back_with_it(ctx):
    with pytest.raises(RuntimeError), transaction(ctx.conn):
        audit.record(ctx.conn, actor="a", action="x", decision="done")
        raise RuntimeError("the write failed")
    assert audit.list_events(ctx.conn) == []


def test_list_filters_by_actor_action_and_decision(ctx):
    _events(ctx)
    audit.record(ctx.conn, actor="staff@platform.example", action="grant.revoke",
                 decision="done", reason="ended")
    assert [e.action for e in audit.list_events(ctx.conn, actor="staff@platform.example")] == [
        "grant.revoke"]
    assert len(audit.list_events(ctx.conn, action="query.run", decision="allowed")) == 3
    assert audit.list_events(ctx.conn, target_prefix="dataset:eu")[0].target == "dataset:eunomia"


def test_unknown_decisions_are_a_programming_error(ctx):
    with pytest.raises(ValueError):
        audit.record(ctx.conn, actor="a", action="x", decision="maybe")


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
