"""Who is acting: OIDC claims or a CLI ``--user`` e-mail → a Principal read from the store.

Roles and team membership live in the store, not in the identity cookie; they are re-read on
every request so that a suspension or removal takes effect at the next click.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

from portal.errors import Denied, NotFound
from portal.store import people

Role = Literal["staff", "member", "anonymous"]


@dataclass(frozen=True)
class Principal:
    user_id: int | None
    email: str
    role: Role
    team: str | None = None  # team slug, for startup members
    team_id: int | None = None
    issuer: str | None = None
    subject: str | None = None
    status: str = "active"

    @property
    def is_staff(self) -> bool:
        return self.role == "staff" and self.status == "active"

    @property
    def is_member(self) -> bool:
        return self.role == "member" and self.status == "active" and self.team is not None

    @property
    def actor(self) -> str:
        """How this principal appears in the audit log."""
        return self.email or "anonymous"


ANONYMOUS = Principal(user_id=None, email="", role="anonymous")


def principal_from_row(conn: sqlite3.Connection, row: sqlite3.Row) -> Principal:
    team = people.team_of_user(conn, row["id"]) if row["role"] == "member" else None
    team_active = team is not None and team["status"] == "active"
    return Principal(
        user_id=row["id"], email=row["email"], role=row["role"],
        team=team["slug"] if team else None, team_id=team["id"] if team else None,
        issuer=row["issuer"], subject=row["subject"],
        status=row["status"] if (team is None or team_active) else "suspended",
    )


def principal_for_email(conn: sqlite3.Connection, email: str) -> Principal:
    """Resolve a user by e-mail (CLI and automation). Raises NotFound or Denied (suspended)."""
    row = people.get_user_by_email(conn, email)
    if row is None:
        raise NotFound("unknown_user", f"No portal user has the e-mail address {email!r}.")
    principal = principal_from_row(conn, row)
    if principal.status != "active":
        raise Denied("user_suspended", f"The account {principal.email} is {principal.status}.")
    return principal


def require_staff(principal: Principal) -> None:
    """Raises Denied unless the principal is active platform staff."""
    if not principal.is_staff:
        raise Denied("staff_only", "Only platform staff can do this.")
