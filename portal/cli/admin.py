"""`portal audit verify | checkpoint | list` and `portal demo seed`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from portal.cli import args as types
from portal.cli import output
from portal.config import Settings

EXIT_DOES_NOT_VERIFY = 3


def register(sub: argparse._SubParsersAction) -> None:
    audit_p = sub.add_parser("audit", help="the audit log")
    audit_sub = audit_p.add_subparsers(dest="audit_command", required=True)

    verify_p = audit_sub.add_parser(
        "verify", help="check the whole keyed chain of the audit log, and that it still reaches "
                       "every signed checkpoint (exit 3 when it does not)")
    verify_p.add_argument("--checkpoint", action="append", type=Path, default=[],
                          metavar="FILE", help="also compare with this exported checkpoint "
                                               "(repeatable)")
    output.add_format(verify_p)
    verify_p.set_defaults(func=cmd_audit_verify)

    checkpoint_p = audit_sub.add_parser(
        "checkpoint", help="verify the chain, then sign a checkpoint of its head into the "
                           "anchor folder (PORTAL_AUDIT_ANCHOR_DIR)")
    checkpoint_p.add_argument("--out", type=Path, help="also export it to this file (outside "
                                                       "PORTAL_HOME)")
    output.add_format(checkpoint_p)
    checkpoint_p.set_defaults(func=cmd_audit_checkpoint)

    list_p = audit_sub.add_parser("list", help="list audit events, newest first")
    for flag in ("actor", "team", "action", "decision", "since", "until"):
        list_p.add_argument(f"--{flag}")
    list_p.add_argument("--limit", type=types.list_limit, default=100)
    list_p.add_argument("--user", help="staff e-mail (optional; audit listing is staff-only "
                                       "in the browser)")
    output.add_format(list_p, ("table", "json", "csv"))
    list_p.set_defaults(func=cmd_audit_list)

    demo_p = sub.add_parser("demo", help="demo data")
    demo_sub = demo_p.add_subparsers(dest="demo_command", required=True)
    seed_p = demo_sub.add_parser("seed", help="create the demo teams, users and grants "
                                              "(idempotent)")
    output.add_format(seed_p)
    seed_p.set_defaults(func=cmd_demo_seed)


def _with_store(settings: Settings, use: Callable[[Any], Any]) -> Any:
    """Run ``use(ctx)`` on a freshly opened store context, closing it after."""
    from portal.services.context import Context

    ctx = Context.open(settings)
    try:
        return use(ctx)
    finally:
        ctx.close()


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from portal.services import admin

    result = _with_store(settings, lambda ctx: admin.verify_audit_chain(
        ctx, output.operator(), args.checkpoint))
    if args.format == "json":
        output.emit_json(result.to_dict())
    elif result.ok:
        print(f"audit log verifies: {result.events} events, chain intact up to event "
              f"{result.head_id}, {result.checkpoints} checkpoint(s) matched")
    else:
        print(f"audit log does NOT verify: {result.problem} (checked {result.checked} events)")
    if args.format != "json":
        for note in result.notes:
            print(f"note: {note}")
    return 0 if result.ok else EXIT_DOES_NOT_VERIFY


def cmd_audit_checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    from portal.services import admin

    made = _with_store(settings, lambda ctx: admin.write_audit_checkpoint(
        ctx, output.operator(), args.out))
    if args.format == "json":
        output.emit_json(made)
    else:
        cp = made["checkpoint"]
        print(f"checkpoint signed: {cp['events']} events up to event {cp['last_id']} "
              f"({cp['at']}), key {cp['key_id']}")
        print(f"written to {made['anchor_file']}")
        if made["exported_to"]:
            print(f"exported to {made['exported_to']}")
    return 0


def cmd_audit_list(args: argparse.Namespace, settings: Settings) -> int:
    from portal.identity import principal_for_email
    from portal.services import admin

    def listing(ctx: Any) -> list:
        who = principal_for_email(ctx.conn, args.user) if args.user else output.operator()
        return admin.audit_events(ctx, who, actor=args.actor, team=args.team,
                                  action=args.action, decision=args.decision,
                                  since=args.since, until=args.until, limit=args.limit)

    events = _with_store(settings, listing)
    if args.format == "json":
        output.emit_json([e.to_dict() for e in events])
        return 0
    columns = ["id", "at", "actor", "team", "action", "target", "decision", "reason"]
    output.emit_rows(columns, [[getattr(e, c) for c in columns] for e in events], args.format)
    return 0


def cmd_demo_seed(args: argparse.Namespace, settings: Settings) -> int:
    from portal.services import demo

    results = _with_store(settings, demo.seed)
    if args.format == "json":
        output.emit_json(results)
    else:
        for step, result in results.items():
            print(f"{step}: {result}")
    return 0
