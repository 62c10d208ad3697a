"""Per-request dependencies: a store connection, and the caller authenticated by their token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anyio
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from portal import audit
from portal.config import Settings
from portal.errors import NotFound
from portal.services import tokens
from portal.services.context import Context
from portal.services.tokens import Caller
from portal.store.db import connect

bearer = HTTPBearer(auto_error=False, scheme_name="personal_access_token",
                    description="A personal access token (`acpat_...`) from the API tokens "
                                "page or `portal tokens create`.")


def context(request: Request) -> Iterator[Context]:
    """A store connection for this request only (the store is migrated once, at start)."""
    settings = request.app.state.settings
    ctx = Context(settings=settings, conn=connect(settings.store_target, settings))
    try:
        yield ctx
    finally:
        ctx.close()


def endpoint(request: Request) -> str:
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


def caller(action: str | None) -> Callable[..., Caller]:
    """A dependency authenticating the request's bearer token for ``action`` (None: any valid
    token). Refusals raise (and are audited by) :func:`portal.services.tokens.authenticate`."""

    def dependency(request: Request, ctx: Context = Depends(context),
                   credentials: HTTPAuthorizationCredentials | None = Security(bearer)
                   ) -> Caller:
        raw = credentials.credentials if credentials else _raw_header(request)
        return tokens.authenticate(ctx, raw, action, endpoint=endpoint(request))

    return dependency


def _raw_header(request: Request) -> str | None:
    """A non-Bearer Authorization header still counts as a (malformed) token attempt."""
    value = request.headers.get("authorization")
    return value[:200] if value else None


def audited_lookup(ctx: Context, who: Caller, action: str, target: str,
                   call: Callable[[], Any]) -> Any:
    """Run a read whose service does not audit a miss; audit a NotFound (an API caller can
    guess ids, so probing for another team's runs is recorded)."""
    try:
        return call()
    except NotFound as exc:
        audit.record(ctx.conn, actor=who.principal.actor, team=who.principal.team,
                     action=action, target=target, decision="denied", reason=exc.code,
                     details={"via": "api", "token_id": who.token.token_id})
        raise


def record_refusal(settings: Settings, authorization: str | None, path: str, reason: str,
                   details: dict[str, Any] | None = None) -> None:
    """Audit one request refused before it reached a use case (``api.request``, rejected),
    attributed to the owner of the token it carries when that token is genuine."""
    ctx = Context(settings=settings, conn=connect(settings.store_target, settings))
    try:
        scheme, _, raw = (authorization or "").partition(" ")
        owner = tokens.owner_of(ctx, raw.strip()) if scheme.lower() == "bearer" else None
        actor, team = owner if owner else ("anonymous", None)
        audit.record(ctx.conn, actor=actor, team=team, action="api.request",
                     target=f"endpoint:{path[:100]}", decision="rejected", reason=reason,
                     details=details or {})
    finally:
        ctx.close()


async def record_refusal_async(request: Request, reason: str,
                               details: dict[str, Any] | None = None) -> None:
    await anyio.to_thread.run_sync(record_refusal, request.app.state.settings,
                                   request.headers.get("authorization"), request.url.path,
                                   reason, details)
