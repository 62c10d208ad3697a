"""`portal worker`: run background jobs (validation runs, sweeps, extract builds, periodic
re-validation) on this machine, against the store named by PORTAL_DATABASE_URL (or the SQLite
store under PORTAL_HOME) and the files under PORTAL_STORAGE_ROOT."""

from __future__ import annotations

import argparse

from portal.cli import output
from portal.config import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run background jobs (validation runs and upkeep)")
    p.add_argument("--once", action="store_true",
                   help="process the jobs that are ready, then exit")
    p.add_argument("--name", help="worker name shown in leases (default: host:pid:random)")
    output.add_format(p)
    p.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from sandbox import worker

    try:
        done = worker.work(settings, once=args.once, name=args.name)
    except KeyboardInterrupt:  # stopping a worker by hand; a run in flight is retried later
        return 0
    if args.format == "json":
        output.emit_json({"processed": done})
    else:
        print(f"processed {done} validation run(s)")
    return 0
