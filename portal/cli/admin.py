"""`portal audit ...` and `portal demo seed`."""

from __future__ import annotations

import argparse

from portal import audit
from portal.cli import output
from portal.config import Settings
from portal.identity import principal_for_email, require_staff
from portal.services import demo
from portal.services.context import Context


def register(sub: argparse._SubParsersAction) -> None:
    audit_p = sub.add_parser("audit", help="the audit log")
    audit_sub = audit_p.add_subparsers(dest="audit_command", required=True)

    verify_p = audit_sub.add_parser("verify", help="check the hash chain of the audit log")
    output.add_format(verify_p)
    verify_p.set_defaults(func=cmd_audit_verify)

    list_p = audit_sub.add_parser("list", help="list audit events, newest first")
    for flag in ("actor", "team", "action", "decision", "since", "until"):
        list_p.add_argument(f"--{flag}")
    list_p.add_argument("--limit", type=int, default=100)
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


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    ctx = Context.open(settings)
    result = audit.verify(ctx.conn)
    if args.format == "json":
        output.emit_json({"ok": result.ok, "checked": result.checked,
                          "first_bad_id": result.first_bad_id, "problem": result.problem})
    elif result.ok:
        print(f"audit log verifies: {result.checked} events, chain intact")
    else:
        print(f"audit log does NOT verify: {result.problem} (checked {result.checked} events)")
    return 0 if result.ok else 3


def cmd_audit_list(args: argparse.Namespace, settings: Settings) -> int:
    ctx = Context.open(settings)
    if args.user:
        require_staff(principal_for_email(ctx.conn, args.user))
    events = audit.list_events(ctx.conn, actor=args.actor, team=args.team, action=args.action,
                               decision=args.decision, since=args.since, until=args.until,
                               limit=args.limit)
    if args.format == "json":
        output.emit_json([e.to_dict() for e in events])
        return 0
    columns = ["id", "at", "actor", "team", "action", "target", "decision", "reason"]
    output.emit_rows(columns, [[getattr(e, c) for c in columns] for e in events], args.format)
    return 0


def cmd_demo_seed(args: argparse.Namespace, settings: Settings) -> int:
    ctx = Context.open(settings)
    results = demo.seed(ctx)
    if args.format == "json":
        output.emit_json(results)
    else:
        for step, result in results.items():
            print(f"{step}: {result}")
    return 0
