"""Who is acting: OIDC claims or a CLI ``--user`` e-mail → a Principal read from the store.

Roles and team membership live in the store, not in the identity cookie; they are re-read on
every request so that a suspension or removal takes effect at the next click.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from portal import audit
from portal.config import Settings
from portal.errors import Denied, NotFound
from portal.store import people
from portal.store.db import transaction

if TYPE_CHECKING:
    from portal.services.context import Context

Role = Literal["staff", "member", "anonymous", "operator"]


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
    def is_unknown(self) -> bool:
        """Signed in with the identity provider but not a portal user (sees how to join)."""
        return self.user_id is None and self.subject is not None

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
        error: Denied | NotFound = NotFound(
            "unknown_user", f"No portal user has the e-mail address {email[:254]!r}.")
    else:
        principal = principal_from_row(conn, row)
        if principal.status == "active":
            return principal
        error = Denied("user_suspended", f"The account {principal.email} is {principal.status}.")
    audit.record(conn, actor=email.strip().lower()[:254] or "anonymous", action="identity.resolve",
                 decision="denied", reason=error.code, details={"via": "email"})
    raise error


# --- OIDC sign-in -----------------------------------------------------------------------------

CLOCK_SKEW_SECONDS = 300
LAST_SEEN_EVERY_SECONDS = 600


def _claim_text(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    return value.strip() if isinstance(value, str) else ""


def claim_groups(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``groups`` claim as a tuple of names (providers send a list or one string)."""
    raw = claims.get("groups")
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list | tuple):
        return tuple(str(g) for g in raw)
    return ()


def _email_verified(claims: Mapping[str, Any]) -> bool:
    value = claims.get("email_verified")
    return value is True or (isinstance(value, str) and value.lower() == "true")


def session_started_at(claims: Mapping[str, Any]) -> int:
    """When the person authenticated: ``auth_time`` if the provider sent it, else ``iat``.

    Raises Denied(code='session_expired') when neither is a number."""
    for name in ("auth_time", "iat"):
        value = claims.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    raise Denied("session_expired", "Your sign-in carries no time; please sign in again.")


def check_session_age(claims: Mapping[str, Any], max_age_hours: int,
                      now: float | None = None) -> None:
    """Raises Denied(code='session_expired') when the sign-in is older than the maximum age
    (Streamlit's own cookie lives for 30 days, so the portal enforces its own limit), and
    Denied(code='invalid_identity') when it claims to come from the future."""
    now = time.time() if now is None else now
    started = session_started_at(claims)
    if started > now + CLOCK_SKEW_SECONDS:
        raise Denied("invalid_identity", "Your sign-in is not valid yet; please sign in again.")
    if now - started > max_age_hours * 3600:
        raise Denied("session_expired",
                     f"Sessions last at most {max_age_hours} hours; please sign in again.")


def check_claims(claims: Mapping[str, Any], settings: Settings) -> None:
    """The sign-in requirements declared in the settings: the token's issuer is on
    ``settings.oidc_allowed_issuers`` (when the list is set; production requires it) and every
    claim of ``settings.oidc_required_claims`` is present and not empty. Raises Denied
    ``issuer_not_allowed`` or ``invalid_identity`` (naming the missing claim)."""
    issuer = _claim_text(claims, "iss")
    allowed = settings.oidc_allowed_issuers
    if allowed and issuer.rstrip("/") not in {i.rstrip("/") for i in allowed}:
        raise Denied("issuer_not_allowed", "This sign-in comes from an identity provider the "
                                           "portal does not accept. Contact platform staff.")
    for name in settings.oidc_required_claims:
        value = claims.get(name)
        if value is None or value == "" or value == [] or (
                isinstance(value, str) and not value.strip()):
            raise Denied("invalid_identity", f"The sign-in lacks the {name!r} claim the "
                                             f"portal requires; please sign in again or "
                                             f"contact platform staff.")


def sign_in(ctx: Context, claims: Mapping[str, Any], settings: Settings,
            now: float | None = None) -> Principal:
    """Resolve ID-token claims to a Principal, re-reading the store (call it on every rerun).

    - Users are keyed by (issuer, subject). The first sign-in whose *verified* e-mail matches an
      invited or seeded user not yet bound to an identity binds that user (audited).
    - A person in the IdP group ``settings.staff_group`` and unknown to the store becomes a
      staff user bound to their identity (audited). Startup members stay members.
    - Anyone else gets an unknown principal (``is_unknown``): the UI shows how to join.

    Raises Denied with code ``session_expired`` (older than ``settings.session_max_age_hours``),
    ``invalid_identity`` (no issuer or subject, or a required claim missing: see
    :func:`check_claims`), ``issuer_not_allowed`` (an issuer not on the allowlist),
    ``identity_conflict`` (the e-mail belongs to a user bound to another identity),
    ``user_suspended`` or ``user_removed``."""
    issuer, subject = _claim_text(claims, "iss"), _claim_text(claims, "sub")
    if not issuer or not subject:
        raise Denied("invalid_identity",
                     "The sign-in did not say who you are; please sign in again.")
    check_claims(claims, settings)
    check_session_age(claims, settings.session_max_age_hours, now)
    row = people.get_user_by_identity(ctx.conn, issuer, subject)
    if row is None:
        row = _bind_or_create(ctx, claims, settings, issuer, subject)
    if row is None:
        email = _claim_text(claims, "email").lower()
        return Principal(user_id=None, email=email, role="anonymous", issuer=issuer,
                         subject=subject, status="unknown")
    principal = principal_from_row(ctx.conn, row)
    if principal.status in ("suspended", "removed"):
        raise Denied(f"user_{principal.status}",
                     f"Your portal account is {principal.status}. Contact platform staff.")
    _touch(ctx, row)
    return principal


def _bind_or_create(ctx: Context, claims: Mapping[str, Any], settings: Settings, issuer: str,
                    subject: str) -> sqlite3.Row | None:
    email = _claim_text(claims, "email").lower()
    if not email or not _email_verified(claims):
        return None
    with transaction(ctx.conn):
        row = people.get_user_by_email(ctx.conn, email)
        if row is not None and row["subject"] is not None:
            raise Denied("identity_conflict", "This e-mail address is linked to another "
                         "sign-in. Contact platform staff.")
        if row is not None:
            people.bind_identity(ctx.conn, row["id"], issuer, subject)
            action = "identity.bind"
        elif settings.staff_group and settings.staff_group in claim_groups(claims):
            user_id = people.ensure_user(ctx.conn, email=email, role="staff",
                                         name=_claim_text(claims, "name"),
                                         issuer=issuer, subject=subject)
            row = ctx.conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
            action = "identity.staff_from_group"
        else:
            return None
        audit.record(ctx.conn, actor=email, action=action, decision="done",
                     target=f"user:{email}", details={"issuer": issuer})
        return people.get_user_by_identity(ctx.conn, issuer, subject)


def _touch(ctx: Context, row: sqlite3.Row) -> None:
    last = row["last_seen_at"]
    stale_before = datetime.fromtimestamp(time.time() - LAST_SEEN_EVERY_SECONDS, UTC)
    if last is None or last < stale_before.strftime("%Y-%m-%dT%H:%M:%SZ"):
        with transaction(ctx.conn):
            people.touch_last_seen(ctx.conn, row["id"])


def record_refused_sign_in(ctx: Context, claims: Mapping[str, Any], error: Denied) -> None:
    """Audit a refused sign-in (suspended, expired, conflicting identity). Call once per
    browser session and refusal, not on every rerun."""
    email = _claim_text(claims, "email").lower() or _claim_text(claims, "sub")
    audit.record(ctx.conn, actor=email or "anonymous", action="identity.sign_in",
                 decision="denied", reason=error.code,
                 details={"issuer": _claim_text(claims, "iss")})


def bind_identity(ctx: Context, email: str, issuer: str, subject: str, actor: str) -> None:
    """Bind an existing user to an identity (used by the development server to bind the demo
    personas to the embedded provider). Raises NotFound for an unknown e-mail."""
    with transaction(ctx.conn):
        row = people.get_user_by_email(ctx.conn, email)
        if row is None:
            raise NotFound("unknown_user", "No portal user has that e-mail address.")
        if (row["issuer"], row["subject"]) == (issuer, subject):
            return
        people.bind_identity(ctx.conn, row["id"], issuer, subject)
        audit.record(ctx.conn, actor=actor, action="identity.bind", decision="done",
                     target=f"user:{row['email']}", details={"issuer": issuer})
