"""Who is signed in, re-read from the store on every rerun, and the guard every page calls first.

The guard renders what someone who may not see the page should see (sign-in prompt, how to
join, a refusal) and stops the script, so nothing after it runs. Hiding a page from the
navigation is not access control; this is.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal, NamedTuple

import streamlit as st

from portal import audit, authz
from portal.config import Settings
from portal.errors import ConfigError, Denied
from portal.identity import Principal, record_refused_sign_in, sign_in
from portal.services.context import Context
from portal.store.db import connect, open_store
from portal.ui import widgets
from portal.ui.errors import show_error

Role = Literal["staff", "member", "any"]
Kind = Literal["signed_out", "refused", "unknown", "member", "staff", "no_role"]

_CTX_KEY = "_portal_context"
_REFUSALS_KEY = "_portal_refusals_audited"
_migrated: set[str] = set()
_migrate_lock = threading.Lock()


@dataclass(frozen=True)
class Resolved:
    """The outcome of resolving the browser's identity on this rerun."""

    kind: Kind
    principal: Principal | None = None
    refusal: Denied | None = None


class Session(NamedTuple):
    principal: Principal
    ctx: Context


def settings() -> Settings:
    """Settings from the environment (cheap; read on every rerun so tests can change them)."""
    return Settings.from_env()


def context() -> Context:
    """This browser session's store connection (opened once per session; migrations once per
    process and home)."""
    current = settings()
    cached = st.session_state.get(_CTX_KEY)
    if isinstance(cached, Context) and cached.settings == current:
        return cached
    home = str(current.home)
    with _migrate_lock:
        if home not in _migrated:
            open_store(current).close()
            _migrated.add(home)
    ctx = Context(settings=current, conn=connect(current.store_target, current))
    st.session_state[_CTX_KEY] = ctx
    return ctx


def _claims() -> dict | None:
    if not st.user.get("is_logged_in"):
        return None
    return st.user.to_dict()


def resolve() -> Resolved:
    """Resolve the signed-in person without rendering anything (used by the router)."""
    claims = _claims()
    if claims is None:
        return Resolved("signed_out")
    ctx = context()
    try:
        principal = sign_in(ctx, claims, ctx.settings)
    except Denied as refusal:
        _audit_refusal_once(ctx, claims, refusal)
        return Resolved("refused", refusal=refusal)
    if principal.is_unknown:
        return Resolved("unknown", principal)
    if authz.can_staff(ctx.conn, principal):
        return Resolved("staff", principal)
    if authz.can_member(ctx.conn, principal):
        return Resolved("member", principal)
    return Resolved("no_role", principal)


def _audit_refusal_once(ctx: Context, claims: dict, refusal: Denied) -> None:
    done: set = st.session_state.setdefault(_REFUSALS_KEY, set())
    if refusal.code not in done:
        record_refused_sign_in(ctx, claims, refusal)
        done.add(refusal.code)


def require_principal(role: Role = "any", page: str = "") -> Session:
    """The guard: returns the signed-in principal allowed on this page, or renders the reason
    it is not and stops the script (``st.stop``). ``role``: ``staff``, ``member`` (an active
    startup member) or ``any`` (any active portal user). A known user reaching a page of another
    role is refused and the attempt audited."""
    try:
        current = settings()
    except ConfigError as exc:
        show_error(exc)
        st.stop()
    if current.dev_sign_in:
        widgets.dev_sign_in_banner()
    resolved = resolve()
    if resolved.kind == "signed_out":
        widgets.sign_in_prompt(current.dev_sign_in)
        st.stop()
    if resolved.kind == "refused":
        widgets.refusal(resolved.refusal)
        st.stop()
    principal = resolved.principal
    if resolved.kind in ("unknown", "no_role"):
        widgets.how_to_join(principal)
        st.stop()
    ctx = context()
    widgets.signed_in_sidebar(principal)
    allowed = {"staff": resolved.kind == "staff", "member": resolved.kind == "member",
               "any": True}[role]
    if not allowed:
        audit.record(ctx.conn, actor=principal.actor, team=principal.team, action="ui.page",
                     target=f"page:{page or role}", decision="denied", reason=f"{role}_only")
        show_error(Denied(f"{role}_only", f"This page is for {_ROLE_NAMES[role]}."))
        st.stop()
    return Session(principal, ctx)


_ROLE_NAMES = {"staff": "platform staff", "member": "startup team members", "any": "portal users"}
