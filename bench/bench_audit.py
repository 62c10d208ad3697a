"""Audit chain figures: appending a keyed event, and what a staff page pays to verify the chain
incrementally (only events since the last verification) against a full verification, each as a
ratio against a baseline measured in the same run on the same store file."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.bench_access import _median_ms
from portal import audit
from portal.config import Settings
from portal.services.context import Context
from portal.store.db import transaction

EVENTS = 20_000
NEW_PER_VISIT = 20


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context.open(Settings.from_env({"PORTAL_HOME": str(Path(tmp) / "home")}))
        with transaction(ctx.conn):
            for i in range(EVENTS):
                audit.record(ctx.conn, actor=f"user{i % 50}@x.example", action="query.run",
                             decision="allowed", target="dataset:eunomia",
                             details={"sql": "SELECT count(*) FROM person", "rows": i})

        def bare_write() -> None:
            with transaction(ctx.conn):
                ctx.conn.execute("UPDATE teams SET name = name WHERE id = 0")

        write = _median_ms(bare_write, 300)
        append = _median_ms(lambda: audit.record(ctx.conn, actor="a@x.example", action="x",
                                                 decision="done", details={"n": 1}), 300)
        print(f"audit: record (read head, HMAC, insert, commit) median {append:.3f} ms vs one "
              f"empty write transaction {write:.3f} ms = {append / write:.1f}x")

        scan = _median_ms(lambda: ctx.conn.execute(
            "SELECT count(*), max(length(details)) FROM audit_events").fetchone(), 5)
        full = _median_ms(lambda: audit.verify(ctx.conn), 5)
        total = ctx.conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
        print(f"audit: full verify of {total} events median {full:.1f} ms vs one table scan "
              f"{scan:.1f} ms = {full / scan:.1f}x")

        def visit() -> None:
            for _ in range(NEW_PER_VISIT):
                audit.record(ctx.conn, actor="a@x.example", action="x", decision="done")
            audit.verify_new(ctx.conn)

        def writes_only() -> None:
            for _ in range(NEW_PER_VISIT):
                audit.record(ctx.conn, actor="a@x.example", action="x", decision="done")

        incremental = _median_ms(visit, 20) - _median_ms(writes_only, 20)
        print(f"audit: incremental verify of {NEW_PER_VISIT} new events (staff page) median "
              f"{max(incremental, 0.001):.2f} ms vs full verify {full:.1f} ms = "
              f"{full / max(incremental, 0.001):.0f}x less work")
        ctx.close()


if __name__ == "__main__":
    main(sys.argv[1:])
