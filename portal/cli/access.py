"""`portal access ...` (requests, reviews, grants) and `portal teams ...` (teams and people).

Every command acts as a named portal user (``--by`` for staff, ``--user`` for members), resolved
from the store, and calls the same services as the browser pages. Refusals exit 2 with
``{"error": {"code", "message"}}`` under ``--format json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from portal.cli import output
from portal.cli.args import record_id, whole_number
from portal.config import Settings

if TYPE_CHECKING:
    from types import ModuleType

    from portal.services.context import Context

GRANT_COLUMNS = ["id", "team", "dataset_id", "tier", "bucket", "days_left", "expires_at",
                 "approved_by", "revoked_reason"]
REQUEST_COLUMNS = ["id", "team", "dataset_id", "tier", "status", "requested_by",
                   "approvals_given", "approvals_required", "created_at"]

Handler = Callable[[argparse.Namespace, "Context"], Any]


def _access() -> ModuleType:
    from portal.services import access

    return access


def _people() -> ModuleType:
    from portal.services import people

    return people


def _command(handler: Handler, columns: list[str] | None = None):
    """Wrap a handler: open the store, run it, print its result in the chosen format."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        from portal.services.context import Context

        ctx = Context.open(settings)
        try:
            result = handler(args, ctx)
        finally:
            ctx.close()
        _print(result, args.format, columns)
        return 0

    return run


def _print(result: Any, fmt: str, columns: list[str] | None) -> None:
    if fmt == "json":
        output.emit_json(result)
    elif isinstance(result, list) and columns:
        output.emit_rows(columns, [[_cell(row.get(c)) for c in columns] for row in result], fmt)
    elif isinstance(result, dict):
        for key, value in result.items():
            if key not in ("reviews", "team_history"):
                print(f"{key}: {value}")
    else:
        print(result)


def _cell(value: Any) -> Any:
    """Lists (a team's members or grants) as a short text cell in tables."""
    if isinstance(value, list):
        return ", ".join(str(v.get("email") or f"{v.get('dataset_id')}:{v.get('tier')}"
                             f" ({v.get('bucket')})") if isinstance(v, dict) else str(v)
                         for v in value)
    return value


def _add(sub: argparse._SubParsersAction, name: str, help_text: str, handler: Handler,
         columns: list[str] | None = None) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text)
    output.add_format(parser)
    parser.set_defaults(func=_command(handler, columns))
    return parser


def _who(ctx: Context, email: str):
    from portal.identity import principal_for_email

    return principal_for_email(ctx.conn, email)


def register(sub: argparse._SubParsersAction) -> None:
    _register_access(sub)
    _register_teams(sub)


def _register_access(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("access", help="access requests, reviews and grants")
    acc = parser.add_subparsers(dest="access_command", required=True)

    p = _add(acc, "grant", "grant a team a dataset tier directly (staff)", _grant)
    p.add_argument("--team", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--tier", required=True)
    p.add_argument("--days", type=whole_number, required=True)
    p.add_argument("--by", required=True, metavar="STAFF_EMAIL")
    p.add_argument("--purpose", default="",
                   help="the purpose, as long as the tier's requests need")
    p.add_argument("--conditions", default="")
    p.add_argument("--terms-agreed", action="store_true",
                   help="state that the team agreed to the dataset's terms as they read now "
                        "(required on tiers whose requests must agree to them)")
    p.add_argument("--ethics-reference", help="required on tiers whose requests need one")

    p = _add(acc, "revoke", "revoke a grant with a reason (staff)", _revoke)
    p.add_argument("grant_id", metavar="GRANT_ID", type=record_id)
    p.add_argument("--by", required=True, metavar="STAFF_EMAIL")
    p.add_argument("--reason", required=True)

    p = _add(acc, "list", "list grants (all, or as --user sees them)", _list, GRANT_COLUMNS)
    p.add_argument("--bucket", choices=["active", "expiring_soon", "expired", "revoked"])
    p.add_argument("--user", metavar="EMAIL", help="list as this user sees it")

    p = _add(acc, "request", "request a dataset tier (team member)", _request)
    p.add_argument("--user", required=True, metavar="EMAIL")
    p.add_argument("--dataset", required=True)
    p.add_argument("--tier", required=True)
    p.add_argument("--purpose", required=True)
    p.add_argument("--agree-terms", action="store_true", help="agree to the dataset's terms")
    p.add_argument("--ethics-reference")

    p = _add(acc, "requests", "list access requests", _requests, REQUEST_COLUMNS)
    p.add_argument("--user", metavar="EMAIL", help="list as this user sees it")
    p.add_argument("--status", help="a request state, or 'open'")

    p = _add(acc, "queue", "the review queue (staff)", _queue, REQUEST_COLUMNS)
    p.add_argument("--by", required=True, metavar="STAFF_EMAIL")

    p = _add(acc, "approve", "approve a request (staff)", _approve)
    p.add_argument("request_id", metavar="REQUEST_ID", type=record_id)
    p.add_argument("--by", required=True, metavar="STAFF_EMAIL")
    p.add_argument("--days", type=whole_number, required=True)
    p.add_argument("--tier")
    p.add_argument("--conditions", default="")

    p = _add(acc, "deny", "deny a request with a reason (staff)", _deny)
    p.add_argument("request_id", metavar="REQUEST_ID", type=record_id)
    p.add_argument("--by", required=True, metavar="STAFF_EMAIL")
    p.add_argument("--reason", required=True)

    p = _add(acc, "withdraw", "withdraw your team's open request", _withdraw)
    p.add_argument("request_id", metavar="REQUEST_ID", type=record_id)
    p.add_argument("--user", required=True, metavar="EMAIL")

    _add(acc, "expire", "record grants past their expiry as expired", _expire)
    _add(acc, "diagram", "print the state diagrams (Mermaid) generated from the tables",
         lambda args, ctx: _diagrams())


def _diagrams() -> str:
    from portal.access.states import mermaid_all

    return mermaid_all()


def _grant(args: argparse.Namespace, ctx: Context) -> Any:
    return _access().grant_access(ctx, _who(ctx, args.by), args.team, args.dataset,
                                  args.tier, args.days, args.purpose, args.conditions,
                                  terms_agreed=args.terms_agreed,
                                  ethics_reference=args.ethics_reference)


def _revoke(args: argparse.Namespace, ctx: Context) -> Any:
    return _access().revoke_grant(ctx, _who(ctx, args.by), args.grant_id, args.reason)


def _list(args: argparse.Namespace, ctx: Context) -> Any:
    if args.user:
        return _access().list_grants(ctx, _who(ctx, args.user), bucket=args.bucket)
    return _access().list_grants_for_operator(ctx, bucket=args.bucket)


def _request(args: argparse.Namespace, ctx: Context) -> Any:
    return _access().submit_request(ctx, _who(ctx, args.user), args.dataset, args.tier,
                                          args.purpose, args.agree_terms, args.ethics_reference)


def _requests(args: argparse.Namespace, ctx: Context) -> Any:
    if args.user:
        return _access().list_requests(ctx, _who(ctx, args.user), status=args.status)
    return _access().list_requests_for_operator(ctx, status=args.status)


def _queue(args: argparse.Namespace, ctx: Context) -> Any:
    return _access().review_queue(ctx, _who(ctx, args.by))


def _approve(args: argparse.Namespace, ctx: Context) -> Any:
    return _access().approve_request(ctx, _who(ctx, args.by), args.request_id, args.days,
                                           args.tier, args.conditions)


def _deny(args: argparse.Namespace, ctx: Context) -> Any:
    return _access().deny_request(ctx, _who(ctx, args.by), args.request_id, args.reason)


def _withdraw(args: argparse.Namespace, ctx: Context) -> Any:
    return _access().withdraw_request(ctx, _who(ctx, args.user), args.request_id)


def _expire(args: argparse.Namespace, ctx: Context) -> Any:
    return {"expired": _access().expire_grants(ctx)}


def _register_teams(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("teams", help="startup teams and their members (staff)")
    teams = parser.add_subparsers(dest="teams_command", required=True)

    p = _add(teams, "list", "teams with members and grants", _teams_list,
             ["team", "name", "status", "members", "grants"])
    p.add_argument("--by", required=True, metavar="STAFF_EMAIL")

    p = _add(teams, "onboard", "create a team and invite members", _teams_onboard)
    p.add_argument("team", metavar="TEAM")
    p.add_argument("--name", required=True)
    p.add_argument("--invite", action="append", default=[], metavar="EMAIL")
    p.add_argument("--by", required=True, metavar="STAFF_EMAIL")

    p = _add(teams, "invite", "invite a member by e-mail", _teams_invite)
    p.add_argument("team", metavar="TEAM")
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("--name", default="")
    p.add_argument("--by", required=True, metavar="STAFF_EMAIL")

    for name, help_text, needs_reason in (
        ("suspend", "suspend a member", True), ("reactivate", "lift a member's suspension", False),
        ("remove", "remove a member from their team", True),
        ("suspend-team", "suspend a team", True),
        ("reactivate-team", "lift a team's suspension", False),
    ):
        p = _add(teams, name, help_text, _teams_status)
        p.add_argument("target", metavar="TEAM" if name.endswith("team") else "EMAIL")
        p.add_argument("--by", required=True, metavar="STAFF_EMAIL")
        if needs_reason:
            p.add_argument("--reason", required=True)
        p.set_defaults(status_action=name)


def _teams_list(args: argparse.Namespace, ctx: Context) -> Any:
    return _people().list_teams(ctx, _who(ctx, args.by))


def _teams_onboard(args: argparse.Namespace, ctx: Context) -> Any:
    return _people().onboard_team(ctx, _who(ctx, args.by), args.team, args.name,
                                        args.invite)


def _teams_invite(args: argparse.Namespace, ctx: Context) -> Any:
    return _people().invite_member(ctx, _who(ctx, args.by), args.team, args.email,
                                         args.name)


def _teams_status(args: argparse.Namespace, ctx: Context) -> Any:
    staff = _who(ctx, args.by)
    reason = getattr(args, "reason", None)
    actions = {
        "suspend": lambda: _people().suspend_member(ctx, staff, args.target, reason),
        "reactivate": lambda: _people().reactivate_member(ctx, staff, args.target),
        "remove": lambda: _people().remove_member(ctx, staff, args.target, reason),
        "suspend-team": lambda: _people().suspend_team(ctx, staff, args.target, reason),
        "reactivate-team": lambda: _people().reactivate_team(ctx, staff, args.target),
    }
    return actions[args.status_action]()
