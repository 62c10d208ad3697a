"""Personal access tokens for the HTTP API: create (the secret is shown once), list, revoke, and
authenticate a request.

A token reads ``acpat_<token id>_<secret>``: ``acpat_`` lets secret scanners recognise a leaked
token (:data:`TOKEN_PATTERN`), the token id (16 hex digits, not secret) names it in listings and
audit events, and the secret is 256 random bits (43 base64url characters). The store keeps only
an HMAC-SHA256 of the whole token under the installation's ``api_token_key`` secret (see
docs/decisions/0009-http-api.md), compared in constant time.

A token belongs to one startup member and their team, names the datasets and actions it may be
used for (:data:`ACTIONS`) and expires after at most ``PORTAL_API_TOKEN_MAX_DAYS``. Every use
re-reads the token, its owner and the team from the store, so a revocation, an expiry or a
suspension takes effect at the next request. Every refused use writes one ``token.use`` audit
event; creation and revocation write ``token.create`` / ``token.revoke`` (refusals included).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from portal import audit
from portal.access.grants import to_text
from portal.access.reviews import clean_text
from portal.authz import can_staff, check_member, check_staff
from portal.catalog.manifest import manifest_paths
from portal.errors import Denied, InvalidInput, NotFound, Rejected
from portal.identity import Principal, principal_from_row
from portal.services.attempts import use_case
from portal.services.context import Context
from portal.store.db import transaction, utcnow
from portal.token_format import ACTIONS, DEFAULT_DAYS, PREFIX, TOKEN_PATTERN

KEY_NAME = "api_token_key"
MAX_ACTIVE_TOKENS = 20
MAX_DATASETS = 20
LAST_USED_EVERY_SECONDS = 60
# Refusals that mean "this request carries no valid token" (HTTP 401); every other refusal of a
# valid token is a denial (HTTP 403).
UNAUTHENTICATED = frozenset({"token_missing", "token_invalid", "token_expired", "token_revoked",
                             "token_team_changed"})


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: never its secret or its hash."""

    token_id: str
    name: str
    owner: str
    team: str
    datasets: tuple[str, ...]
    actions: tuple[str, ...]
    created_at: str
    expires_at: str
    revoked_at: str | None
    revoked_by: str | None
    last_used_at: str | None
    status: str  # active, expired or revoked

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["datasets"], data["actions"] = list(self.datasets), list(self.actions)
        return data


@dataclass(frozen=True)
class CreatedToken:
    """A new token. ``secret`` is the only copy of the token text: show it once, then drop it."""

    secret: str
    info: TokenInfo


@dataclass(frozen=True)
class Caller:
    """An authenticated API request: the token's owner (re-read from the store) and the token."""

    principal: Principal
    token: TokenInfo


def token_hash(ctx: Context, token: str) -> str:
    """The keyed hash the store keeps for ``token`` (HMAC-SHA256, hex)."""
    key = ctx.settings.secret(KEY_NAME)
    return hmac.new(key, token.encode("utf-8"), hashlib.sha256).hexdigest()


def known_datasets(ctx: Context) -> list[str]:
    """Dataset ids a token may name (the catalog's data cards)."""
    return list(manifest_paths(ctx.settings.datasets_dir or
                               ctx.settings.project_root / "datasets"))


def _status(row: sqlite3.Row, now: str) -> str:
    if row["revoked_at"]:
        return "revoked"
    return "expired" if row["expires_at"] <= now else "active"


_SELECT = ("SELECT k.*, u.email AS owner, t.slug AS team FROM api_tokens k"
           " JOIN users u ON u.id = k.user_id JOIN teams t ON t.id = k.team_id")


def _info(row: sqlite3.Row, now: str | None = None) -> TokenInfo:
    return TokenInfo(
        token_id=row["token_id"], name=row["name"], owner=row["owner"], team=row["team"],
        datasets=tuple(json.loads(row["datasets"])), actions=tuple(json.loads(row["actions"])),
        created_at=row["created_at"], expires_at=row["expires_at"],
        revoked_at=row["revoked_at"], revoked_by=row["revoked_by"],
        last_used_at=row["last_used_at"], status=_status(row, now or utcnow()))


def _choices(values: Iterable[str] | None, allowed: Iterable[str], what: str,
             limit: int) -> tuple[str, ...]:
    allowed = list(allowed)
    if isinstance(values, str) or values is None:
        values = [] if values is None else [values]
    chosen = tuple(dict.fromkeys(str(v).strip() for v in values if str(v).strip()))
    unknown = [v for v in chosen if v not in allowed]
    if not chosen or len(chosen) > limit or unknown:
        shown = ", ".join(v[:40] for v in unknown[:3])
        raise InvalidInput("invalid_scope", f"Choose 1 to {limit} {what} from: "
                                            f"{', '.join(allowed)}"
                                            + (f" (unknown: {shown})" if shown else "") + ".")
    return chosen


def _lifetime(ctx: Context, days: object) -> int:
    limit = ctx.settings.api_token_max_days
    if days is None:
        return min(DEFAULT_DAYS, limit)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= limit:
        raise InvalidInput("invalid_lifetime", f"A token lasts 1 to {limit} days.")
    return days


@use_case("token.create", "token:new")
def create_token(ctx: Context, principal: Principal, name: str, datasets: Iterable[str],
                 actions: Iterable[str], days: int | None = None) -> CreatedToken:
    """Make a token for an active startup member, scoped to their team, ``datasets`` and
    ``actions``, expiring after ``days`` (default :data:`DEFAULT_DAYS`, at most the setting).

    Raises Denied (``not_a_member``, ``user_suspended``, ``team_suspended``), InvalidInput
    (``invalid_name``, ``invalid_scope``, ``invalid_lifetime``) or Rejected
    (``too_many_tokens``). The returned ``secret`` is never stored and cannot be shown again."""
    token_id = secrets.token_hex(8)
    token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    digest = token_hash(ctx, token)

    with transaction(ctx.conn):
        user, team = check_member(ctx.conn, principal)
        label = clean_text(name, "invalid_name", "a name for the token", 100, True)
        chosen_datasets = _choices(datasets, known_datasets(ctx), "datasets", MAX_DATASETS)
        chosen_actions = _choices(actions, ACTIONS, "actions", len(ACTIONS))
        lifetime = _lifetime(ctx, days)
        now = utcnow()
        active = ctx.conn.execute(
            "SELECT count(*) FROM api_tokens WHERE user_id = ? AND revoked_at IS NULL"
            " AND expires_at > ?", (user["id"], now)).fetchone()[0]
        if active >= MAX_ACTIVE_TOKENS:
            raise Rejected("too_many_tokens", f"You already have {MAX_ACTIVE_TOKENS} active "
                                              f"tokens; revoke one first.")
        expires = to_text(datetime.now(UTC) + timedelta(days=lifetime))
        ctx.conn.execute(
            "INSERT INTO api_tokens (token_id, secret_hash, user_id, team_id, name, datasets,"
            " actions, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (token_id, digest, user["id"], team["id"], label, json.dumps(chosen_datasets),
             json.dumps(chosen_actions), now, expires))
        audit.record(ctx.conn, actor=principal.actor, team=team["slug"], action="token.create",
                     target=f"token:{token_id}", decision="done",
                     details={"name": label, "datasets": list(chosen_datasets),
                              "actions": list(chosen_actions), "expires_at": expires})
        return CreatedToken(token, _info(_row(ctx.conn, token_id)))


def _row(conn: sqlite3.Connection, token_id: str) -> sqlite3.Row | None:
    return conn.execute(f"{_SELECT} WHERE k.token_id = ?", (token_id,)).fetchone()


@use_case("token.list")
def list_tokens(ctx: Context, principal: Principal, everyone: bool = False) -> list[TokenInfo]:
    """The principal's own tokens, newest first (``everyone``: every token, staff only; raises
    Denied ``staff_only``). Never includes secrets or hashes."""
    if everyone:
        check_staff(ctx.conn, principal)
        rows = ctx.conn.execute(f"{_SELECT} ORDER BY k.id DESC LIMIT 1000").fetchall()
    else:
        rows = ctx.conn.execute(f"{_SELECT} WHERE k.user_id = ? ORDER BY k.id DESC LIMIT 1000",
                                (principal.user_id,)).fetchall()
    now = utcnow()
    return [_info(r, now) for r in rows]


def token_id_of(reference: str) -> str:
    """The token id in ``reference``: a token id, or a whole token (e.g. one found leaked)."""
    text = str(reference or "").strip()
    found = TOKEN_PATTERN.fullmatch(text)
    return found.group(1) if found else text[:64]


@use_case("token.revoke", lambda args: f"token:{token_id_of(args['reference'])}")
def revoke_token(ctx: Context, principal: Principal, reference: str) -> TokenInfo:
    """Revoke a token by its id (or its whole text). Members revoke their own tokens; staff any
    token (e.g. one a secret scanner found). Raises NotFound (``unknown_token``, also for
    another person's token) or Rejected (``already_revoked``)."""
    token_id = token_id_of(reference)

    with transaction(ctx.conn):
        row = _row(ctx.conn, token_id)
        mine = row is not None and row["user_id"] == principal.user_id
        if row is None or not (mine or can_staff(ctx.conn, principal)):
            raise NotFound("unknown_token", "You have no token with that id.")
        if row["revoked_at"]:
            raise Rejected("already_revoked", "This token is already revoked.")
        ctx.conn.execute("UPDATE api_tokens SET revoked_at = ?, revoked_by = ? WHERE id = ?",
                         (utcnow(), principal.actor, row["id"]))
        audit.record(ctx.conn, actor=principal.actor, team=row["team"], action="token.revoke",
                     target=f"token:{token_id}", decision="done",
                     details={"owner": row["owner"], "name": row["name"]})
        return _info(_row(ctx.conn, token_id))


# --- authenticating a request -------------------------------------------------------------
def _refuse(ctx: Context, code: str, message: str, *, actor: str = "anonymous",
            team: str | None = None, token_id: str | None = None,
            details: dict[str, Any] | None = None) -> Denied:
    audit.record(ctx.conn, actor=actor, team=team, action="token.use",
                 target=f"token:{token_id}" if token_id else None, decision="denied",
                 reason=code, details=details or {})
    return Denied(code, message)


def _verified(ctx: Context, raw: str | None) -> sqlite3.Row | None:
    """The token's row when ``raw`` is a token whose keyed hash matches; else None."""
    found = TOKEN_PATTERN.fullmatch(raw or "")
    if not found:
        return None
    row = _row(ctx.conn, found.group(1))
    if row is None or not hmac.compare_digest(row["secret_hash"], token_hash(ctx, raw or "")):
        return None
    return row


def owner_of(ctx: Context, raw: str | None) -> tuple[str, str] | None:
    """(owner e-mail, team) of a genuine token, whatever its state (no audit event): for
    attributing a refusal made before a request is authenticated, such as an oversized body."""
    row = _verified(ctx, raw)
    return (row["owner"], row["team"]) if row is not None else None


def authenticate(ctx: Context, raw: str | None, action: str | None, dataset: str | None = None,
                 endpoint: str = "") -> Caller:
    """The caller of an API request carrying ``raw`` (the bearer token text, or None), allowed
    to do ``action`` (None: any action) and to use ``dataset`` (when given).

    Raises Denied with code ``token_missing``, ``token_invalid`` (malformed, unknown or wrong
    secret), ``token_expired``, ``token_revoked``, ``token_team_changed`` (see
    :data:`UNAUTHENTICATED`), ``user_suspended``, ``team_suspended``, ``not_a_member`` or
    ``token_scope``; each refusal writes one ``token.use`` audit event (never the token text)."""
    where = {"endpoint": endpoint[:200], "action": action}
    if not raw:
        raise _refuse(ctx, "token_missing", "Send a personal access token as "
                                            "'Authorization: Bearer <token>'.", details=where)
    row = _verified(ctx, raw)
    if row is None:
        found = TOKEN_PATTERN.fullmatch(raw)
        raise _refuse(ctx, "token_invalid", "The access token is not valid.",
                      token_id=found.group(1) if found else None, details=where)
    who = {"actor": row["owner"], "team": row["team"], "token_id": row["token_id"],
           "details": where}
    status = _status(row, utcnow())
    if status != "active":
        raise _refuse(ctx, f"token_{status}", f"The access token is {status}; make a new one "
                                              f"on the API tokens page.", **who)
    user = ctx.conn.execute("SELECT * FROM users WHERE id = ?", (row["user_id"],)).fetchone()
    principal = principal_from_row(ctx.conn, user)
    try:
        _, team = check_member(ctx.conn, principal)
    except Denied as exc:
        raise _refuse(ctx, exc.code, exc.message, **who) from None
    if team["id"] != row["team_id"]:
        raise _refuse(ctx, "token_team_changed", "The access token was made for another team.",
                      **who)
    caller = Caller(principal, _info(row))
    check_scope(ctx, caller, action, dataset, endpoint)
    _touch(ctx, row)
    return caller


def check_scope(ctx: Context, caller: Caller, action: str | None, dataset: str | None = None,
                endpoint: str = "") -> None:
    """Raises Denied(``token_scope``), audited, unless the caller's token allows ``action`` on
    ``dataset`` (when given). Call it again once a request's dataset becomes known."""
    token = caller.token
    action_ok = action is None or action in token.actions
    if action_ok and (dataset is None or dataset in token.datasets):
        return
    what = f"{action}" if not action_ok else f"dataset {str(dataset)[:64]}"
    raise _refuse(ctx, "token_scope", f"This token does not allow {what}.",
                  actor=token.owner, team=token.team, token_id=token.token_id,
                  details={"endpoint": endpoint[:200], "action": action,
                           "dataset": None if dataset is None else str(dataset)[:64]})


def _touch(ctx: Context, row: sqlite3.Row) -> None:
    now = datetime.now(UTC)
    stale = to_text(now - timedelta(seconds=LAST_USED_EVERY_SECONDS))
    if row["last_used_at"] is None or row["last_used_at"] < stale:
        with transaction(ctx.conn):
            ctx.conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?",
                             (to_text(now), row["id"]))
