"""`portal tokens create|list|revoke`: personal access tokens for the HTTP API, the same use
cases as the API tokens page. The token text is printed once, by `create`, and never again."""

from __future__ import annotations

import argparse

from portal import token_format
from portal.cli import output
from portal.config import Settings

COLUMNS = ["token_id", "name", "owner", "team", "status", "datasets", "actions", "expires_at",
           "last_used_at"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokens", help="personal access tokens for the HTTP API")
    s = p.add_subparsers(dest="tokens_command", required=True)

    create = s.add_parser("create", help="make a token (printed once)")
    create.add_argument("--user", required=True, help="e-mail of the startup member")
    create.add_argument("--name", required=True, help="what the token is for, e.g. 'CI'")
    create.add_argument("--dataset", action="append", required=True,
                        help="a dataset the token may use (repeat for several)")
    create.add_argument("--action", action="append", required=True,
                        choices=list(token_format.ACTIONS), help="an action the token allows "
                                                           "(repeat for several)")
    create.add_argument("--days", type=int, help=f"lifetime in days (default "
                                                 f"{token_format.DEFAULT_DAYS}, capped by "
                                                 f"PORTAL_API_TOKEN_MAX_DAYS)")
    output.add_format(create)
    create.set_defaults(func=cmd_create)

    listing = s.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--user", required=True, help="e-mail: their own tokens")
    listing.add_argument("--all", action="store_true", help="every token (staff)")
    output.add_format(listing, ("table", "json", "csv"))
    listing.set_defaults(func=cmd_list)

    revoke = s.add_parser("revoke", help="revoke a token by its id (or its whole text)")
    revoke.add_argument("token", help="token id, or the token itself (e.g. one found leaked)")
    revoke.add_argument("--user", required=True, help="e-mail: the owner, or staff")
    output.add_format(revoke)
    revoke.set_defaults(func=cmd_revoke)


def _row(info) -> list[object]:
    data = info.to_dict()
    return [", ".join(v) if isinstance(v, list) else v for v in (data[c] for c in COLUMNS)]


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    from portal.identity import principal_for_email
    from portal.services import tokens
    from portal.services.context import Context

    ctx = Context.open(settings)
    try:
        principal = principal_for_email(ctx.conn, args.user)
        created = tokens.create_token(ctx, principal, args.name, args.dataset, args.action,
                                      args.days)
    finally:
        ctx.close()
    if args.format == "json":
        output.emit_json({"token": created.secret, **created.info.to_dict()})
    else:
        print(created.secret)
        print(f"-- token {created.info.token_id} for {created.info.team}, expires "
              f"{created.info.expires_at}. This is the only time it is shown: store it as a "
              f"CI secret now.")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from portal.identity import principal_for_email
    from portal.services import tokens
    from portal.services.context import Context

    ctx = Context.open(settings)
    try:
        found = tokens.list_tokens(ctx, principal_for_email(ctx.conn, args.user), args.all)
    finally:
        ctx.close()
    if args.format == "json":
        output.emit_json([t.to_dict() for t in found])
    else:
        output.emit_rows(COLUMNS, [_row(t) for t in found], args.format)
    return 0


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from portal.identity import principal_for_email
    from portal.services import tokens
    from portal.services.context import Context

    ctx = Context.open(settings)
    try:
        info = tokens.revoke_token(ctx, principal_for_email(ctx.conn, args.user), args.token)
    finally:
        ctx.close()
    if args.format == "json":
        output.emit_json(info.to_dict())
    else:
        print(f"revoked token {info.token_id} ({info.name}) of {info.owner}")
    return 0
