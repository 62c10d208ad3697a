"""`portal policies check`: load every access policy strictly and check it against the current
releases; print every problem with its file and line (exit 2 when there is any)."""

from __future__ import annotations

import argparse

from portal.cli import output
from portal.config import Settings
from portal.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("policies", help="access policies")
    policies_sub = parser.add_subparsers(dest="policies_command", required=True)
    check = policies_sub.add_parser("check", help="validate access_policies/*.yaml against "
                                                  "the current releases")
    output.add_format(check)
    check.set_defaults(func=cmd_check)
    prune = policies_sub.add_parser("prune-extracts", help="delete governed extracts that no "
                                                           "current release and tier use")
    prune.add_argument("--by", required=True, help="staff e-mail")
    output.add_format(prune)
    prune.set_defaults(func=cmd_prune)


def cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    from portal.identity import principal_for_email
    from portal.services import query as query_services
    from portal.services.context import Context

    ctx = Context.open(settings)
    try:
        removed = query_services.prune_extracts(ctx, principal_for_email(ctx.conn, args.by))
    finally:
        ctx.close()
    if args.format == "json":
        output.emit_json({"removed": removed})
    else:
        print(f"removed {len(removed)} stale extract(s)")
    return 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from portal.services import policies as policy_services
    from portal.services.context import Context

    ctx = Context.open(settings)
    try:
        loaded = policy_services.check_policies(ctx)
        releases = policy_services.current_releases(ctx)
    except ConfigError as exc:
        if args.format == "json":
            output.emit_json({**exc.to_dict(), "problems": exc.problems})
        else:
            print(f"access policies are INVALID ({len(exc.problems)} problem(s)):")
            for problem in exc.problems:
                print(f"  {problem}")
        exc.shown = True  # reported above; still a refused attempt, audited as such
        raise
    finally:
        ctx.close()
    summary = [{"dataset": d, "tiers": sorted(p.tiers), "checked_against_release":
                releases[d].version if d in releases else None} for d, p in sorted(loaded.items())]
    if args.format == "json":
        output.emit_json({"ok": True, "policies": summary})
    else:
        for item in summary:
            against = item["checked_against_release"] or "no release yet"
            print(f"{item['dataset']}: tiers {', '.join(item['tiers'])} — ok ({against})")
    return 0
