"""Who is acting, re-read from the store on every check (never trusted from a stale principal).

Paired checks: ``check_*`` raises :class:`~portal.errors.Denied` with a stable code, ``can_*``
returns a bool by calling it.
"""

from __future__ import annotations

import sqlite3

from portal.errors import Denied
from portal.identity import Principal


def _user(conn: sqlite3.Connection, principal: Principal) -> sqlite3.Row | None:
    if principal.user_id is None:
        return None
    return conn.execute("SELECT * FROM users WHERE id = ?", (principal.user_id,)).fetchone()


def check_staff(conn: sqlite3.Connection, principal: Principal) -> sqlite3.Row:
    """The principal's user row when they are active platform staff. Raises Denied
    ``staff_only`` (members, anonymous, unknown) or ``user_suspended``."""
    user = _user(conn, principal)
    if user is None or user["role"] != "staff" or user["status"] in ("invited", "removed"):
        raise Denied("staff_only", "Only platform staff can do this.")
    if user["status"] != "active":
        raise Denied("user_suspended", "Your account is suspended; contact platform staff.")
    return user


def can_staff(conn: sqlite3.Connection, principal: Principal) -> bool:
    """True when :func:`check_staff` passes."""
    try:
        check_staff(conn, principal)
    except Denied:
        return False
    return True


def check_member_team(conn: sqlite3.Connection, principal: Principal,
                      staff_code: str = "not_a_member") -> tuple[sqlite3.Row, sqlite3.Row]:
    """(user row, team row) when the principal is an active member of an active team.

    Raises Denied ``not_a_member`` (staff — or ``staff_code`` —, unaffiliated, invited or
    removed users), ``user_suspended`` or ``team_suspended``."""
    user = _user(conn, principal)
    if user is not None and user["role"] == "staff":
        raise Denied(staff_code, "Platform staff are not members of a startup team, so they "
                                 "cannot do this.")
    if user is None or user["role"] != "member" or user["status"] in ("invited", "removed"):
        raise Denied("not_a_member", "Only members of a startup team can do this.")
    if user["status"] != "active":
        raise Denied("user_suspended", "Your account is suspended; contact platform staff.")
    team = conn.execute(
        "SELECT t.* FROM teams t JOIN memberships m ON m.team_id = t.id WHERE m.user_id = ?",
        (user["id"],),
    ).fetchone()
    if team is None:
        raise Denied("not_a_member", "Your account is not a member of a startup team.")
    if team["status"] != "active":
        raise Denied("team_suspended", "Your team's access is suspended; contact platform "
                                       "staff.")
    return user, team


def can_act_as_member(conn: sqlite3.Connection, principal: Principal) -> bool:
    """True when :func:`check_member_team` passes."""
    try:
        check_member_team(conn, principal)
    except Denied:
        return False
    return True
