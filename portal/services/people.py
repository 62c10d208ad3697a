"""Teams and people use cases for platform staff: onboard a startup team, invite members by
e-mail, suspend, reactivate or remove a member, suspend or reactivate a team, and list teams with
their members and grants.

An invited member is a ``users`` row with status ``invited`` and no identity yet; the first
sign-in with that verified e-mail binds it (``portal.identity.sign_in``). Member and team states
move only along ``portal.access.states.MEMBER_TRANSITIONS`` / ``TEAM_TRANSITIONS``. Every change
and every refusal is audited (see :func:`portal.services.access.audited_attempt`).
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from portal import audit
from portal.access import grants
from portal.access.reviews import clean_text
from portal.access.states import check_transition
from portal.authz import check_staff
from portal.errors import Denied, InvalidInput, NotFound, Rejected
from portal.identity import Principal
from portal.services.access import access_ended, audited_attempt
from portal.services.attempts import use_case
from portal.services.context import Context
from portal.store import people

TEAM_SLUG = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
EMAIL = re.compile(r"^[^@\s\x00-\x1f<>\"']{1,64}@[a-z0-9-]+(\.[a-z0-9-]+)+$")


def _email(value: str) -> str:
    email = (value or "").strip().lower()
    if len(email) > 254 or not EMAIL.match(email):
        raise InvalidInput("invalid_email", "Give a valid e-mail address.")
    return email


def _team(conn: sqlite3.Connection, slug: str) -> sqlite3.Row:
    row = people.get_team(conn, str(slug))
    if row is None:
        raise NotFound("unknown_team", "There is no team with that name.")
    return row


def _invite(ctx: Context, principal: Principal, team: sqlite3.Row, email: str,
            name: str) -> dict[str, Any]:
    address = _email(email)
    if people.get_user_by_email(ctx.conn, address) is not None:
        raise Rejected("user_exists", "A portal user with that e-mail address already exists.")
    user_id = people.ensure_user(ctx.conn, email=address, role="member", status="invited",
                                 name=clean_text(name, "invalid_name", "the name", 100, False))
    people.set_membership(ctx.conn, user_id, team["id"])
    audit.record(ctx.conn, actor=principal.actor, team=team["slug"], action="member.invite",
                 target=f"user:{address}", decision="done")
    return {"email": address, "team": team["slug"], "status": "invited"}


@use_case("team.onboard", "team:{slug}")
def onboard_team(ctx: Context, principal: Principal, slug: str, name: str,
                 invite_emails: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Create a startup team and invite its first members. Raises Denied (``staff_only``),
    InvalidInput (``invalid_team``, ``invalid_name``, ``invalid_email``), Rejected
    (``team_exists``, ``user_exists``); nothing is created when any part is refused."""

    def work() -> dict[str, Any]:
        check_staff(ctx.conn, principal)
        if not TEAM_SLUG.match(str(slug or "")):
            raise InvalidInput("invalid_team", "A team name is 2-40 lowercase letters, digits "
                                               "and -, starting with a letter.")
        title = clean_text(name, "invalid_name", "the team's display name", 100, True)
        if people.get_team(ctx.conn, slug) is not None:
            raise Rejected("team_exists", "A team with that name already exists.")
        people.ensure_team(ctx.conn, slug, title)
        audit.record(ctx.conn, actor=principal.actor, team=slug, action="team.onboard",
                     target=f"team:{slug}", decision="done", details={"name": title})
        row = _team(ctx.conn, slug)
        invited = [_invite(ctx, principal, row, e, "")["email"] for e in invite_emails]
        return {"team": slug, "name": title, "status": "active", "invited": invited}

    return audited_attempt(ctx, principal, "team.onboard", f"team:{str(slug)[:60]}", work)


@use_case("member.invite", "user:{email}")
def invite_member(ctx: Context, principal: Principal, team: str, email: str,
                  name: str = "") -> dict[str, Any]:
    """Invite a member to a team by e-mail (status ``invited`` until their first sign-in).
    Raises Denied, NotFound (``unknown_team``), InvalidInput, Rejected (``user_exists``)."""

    def work() -> dict[str, Any]:
        check_staff(ctx.conn, principal)
        return _invite(ctx, principal, _team(ctx.conn, team), email, name)

    return audited_attempt(ctx, principal, "member.invite", f"user:{str(email)[:100]}", work)


def _set_member_status(ctx: Context, principal: Principal, email: str, action: str,
                       reason: str | None) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        staff = check_staff(ctx.conn, principal)
        row = people.get_user_by_email(ctx.conn, _email(email))
        if row is None or row["role"] not in ("member", "staff"):
            raise NotFound("unknown_member", "There is no startup team member or staff account "
                                             "with that e-mail address.")
        if row["id"] == staff["id"]:
            raise Denied("own_account", "Another member of staff must change your own account.")
        target = {"suspend": "suspended", "remove": "removed"}.get(action)
        if target is None:  # reactivate: back to invited when they never signed in
            target = "active" if row["subject"] else "invited"
        check_transition("member", row["status"], target, action)
        text = clean_text(reason, "reason_required", "a reason", 2000, action != "reactivate")
        ctx.conn.execute("UPDATE users SET status = ? WHERE id = ?", (target, row["id"]))
        team = people.team_of_user(ctx.conn, row["id"])
        if team is not None and target in ("suspended", "removed"):
            access_ended(ctx.conn, actor=principal.actor, team=team["slug"],
                         member=row["email"], reason=f"member_{target}")
        audit.record(ctx.conn, actor=principal.actor, team=team["slug"] if team else None,
                     action=f"member.{action}", target=f"user:{row['email']}",
                     decision="done", reason=text or None,
                     details={"from": row["status"], "to": target})
        return {"email": row["email"], "team": team["slug"] if team else None,
                "status": target}

    return audited_attempt(ctx, principal, f"member.{action}", f"user:{str(email)[:100]}",
                           work)


@use_case("member.suspend", "user:{email}")
def suspend_member(ctx: Context, principal: Principal, email: str,
                   reason: str) -> dict[str, Any]:
    """Suspend a member (or a member of staff): refused at their next click and query; the
    member's queued runs and unreleased reports end with their access
    (:func:`portal.services.access.access_ended`). Raises Denied (``staff_only``,
    ``own_account``, ``invalid_transition``), NotFound (``unknown_member``), InvalidInput
    (``reason_required``)."""
    return _set_member_status(ctx, principal, email, "suspend", reason)


@use_case("member.reactivate", "user:{email}")
def reactivate_member(ctx: Context, principal: Principal, email: str) -> dict[str, Any]:
    """Lift a suspension. Raises as :func:`suspend_member`."""
    return _set_member_status(ctx, principal, email, "reactivate", None)


@use_case("member.remove", "user:{email}")
def remove_member(ctx: Context, principal: Principal, email: str, reason: str) -> dict[str, Any]:
    """Remove a member from their team for good (kept for the audit trail). Raises as
    :func:`suspend_member`."""
    return _set_member_status(ctx, principal, email, "remove", reason)


def _set_team_status(ctx: Context, principal: Principal, slug: str, action: str,
                     reason: str | None) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        check_staff(ctx.conn, principal)
        row = _team(ctx.conn, slug)
        target = "suspended" if action == "suspend" else "active"
        check_transition("team", row["status"], target, action)
        text = clean_text(reason, "reason_required", "a reason", 2000, action == "suspend")
        ctx.conn.execute("UPDATE teams SET status = ? WHERE id = ?", (target, row["id"]))
        if target == "suspended":
            access_ended(ctx.conn, actor=principal.actor, team=row["slug"],
                         reason="team_suspended")
        audit.record(ctx.conn, actor=principal.actor, team=row["slug"], action=f"team.{action}",
                     target=f"team:{row['slug']}", decision="done", reason=text or None)
        return {"team": row["slug"], "status": target}

    return audited_attempt(ctx, principal, f"team.{action}", f"team:{str(slug)[:60]}", work)


@use_case("team.suspend", "team:{team}")
def suspend_team(ctx: Context, principal: Principal, team: str, reason: str) -> dict[str, Any]:
    """Suspend a whole team (every member refused with ``team_suspended``; grants kept)."""
    return _set_team_status(ctx, principal, team, "suspend", reason)


@use_case("team.reactivate", "team:{team}")
def reactivate_team(ctx: Context, principal: Principal, team: str) -> dict[str, Any]:
    """Lift a team's suspension."""
    return _set_team_status(ctx, principal, team, "reactivate", None)


@use_case("team.list")
def list_teams(ctx: Context, principal: Principal) -> list[dict[str, Any]]:
    """Every team with its members (e-mail, name, status, last seen) and grants (with days
    left). Staff only; raises Denied (``staff_only``)."""
    check_staff(ctx.conn, principal)
    result = []
    for team in people.list_teams(ctx.conn):
        members = [{"email": m["email"], "name": m["name"], "status": m["status"],
                    "last_seen_at": m["last_seen_at"]}
                   for m in people.team_members(ctx.conn, team["id"])]
        team_grants = [g.to_dict() for g in grants.list_grants(ctx.conn, team_id=team["id"])]
        result.append({"team": team["slug"], "name": team["name"], "status": team["status"],
                       "members": members, "grants": team_grants})
    return result
