"""Access workflow figures: the grant check every query makes, and an approval (request
transition + grant + audit events in one transaction), each as a ratio against a baseline
measured in the same run on the same store file."""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from portal.access import grants
from portal.config import Settings
from portal.identity import principal_for_email
from portal.services import access as svc
from portal.services.context import Context
from portal.store import people
from portal.store.db import transaction

TEAMS = 500
BENCH_PURPOSE = "Benchmark grant: measuring the cost of the grant check over many teams."


def _median_ms(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _setup(home: Path) -> tuple[Context, object, object]:
    from tests.factories_access import write_policy  # the same small policy the tests use

    write_policy(home / "policies")
    settings = replace(Settings.from_env({"PORTAL_HOME": str(home / "portal")}),
                       policies_dir=home / "policies")
    ctx = Context.open(settings)
    with transaction(ctx.conn):
        people.ensure_user(ctx.conn, email="staff@platform.example", role="staff")
        people.ensure_user(ctx.conn, email="reviewer@platform.example", role="staff")
        for i in range(TEAMS):
            team_id = people.ensure_team(ctx.conn, f"team-{i}", f"Team {i}")
            user_id = people.ensure_user(ctx.conn, email=f"m{i}@team{i}.example", role="member")
            people.set_membership(ctx.conn, user_id, team_id)
    staff = principal_for_email(ctx.conn, "staff@platform.example")
    for i in range(TEAMS):
        svc.grant_access(ctx, staff, f"team-{i}", "eunomia", "aggregate", 30,
                         purpose=BENCH_PURPOSE, terms_agreed=True)
    return ctx, staff, principal_for_email(ctx.conn, f"m{TEAMS // 2}@team{TEAMS // 2}.example")


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ctx, staff, member = _setup(Path(tmp))
        baseline = _median_ms(lambda: ctx.conn.execute(
            "SELECT * FROM grants WHERE id = ?", (TEAMS // 2,)).fetchone(), 2000)
        check = _median_ms(lambda: grants.check_active_grant(ctx.conn, member, "eunomia"), 2000)
        print(f"access: check_active_grant median {check:.3f} ms vs primary-key lookup "
              f"{baseline:.3f} ms = {check / baseline:.1f}x ({TEAMS} teams with grants)")

        purpose = "Benchmark request purpose long enough for the tier's minimum length."
        ids = iter([svc.submit_request(ctx, principal_for_email(ctx.conn, f"m{i}@team{i}"
                                                                          ".example"),
                                       "eunomia", "row-level", purpose, True)["id"]
                    for i in range(200)])
        approve = _median_ms(lambda: svc.approve_request(ctx, staff, next(ids), days=30), 200)

        def bare_write() -> None:
            with transaction(ctx.conn):
                ctx.conn.execute("UPDATE teams SET name = name WHERE id = 1")

        write = _median_ms(bare_write, 200)
        print(f"access: approve_request (transition + supersede + grant + 3 audit events) "
              f"median {approve:.3f} ms vs one bare write transaction {write:.3f} ms = "
              f"{approve / write:.1f}x")
        ctx.close()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
