"""Request body limits, enforced before the body is read: a declared ``Content-Length`` over
the limit is refused at once, and a body sent without one (chunked) is counted as it arrives and
refused as soon as it passes the limit. Each refusal is audited (``api.request``), attributed to
the token's owner when the request carries a genuine token (``portal.api.deps.record_refusal``,
also used for malformed requests)."""

from __future__ import annotations

from collections.abc import Callable

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.api.deps import record_refusal, record_refusal_async
from portal.api.errors import error_response
from portal.config import Settings

UPLOAD_PATH = "/api/v1/runs"
FORM_MARGIN_BYTES = 1024 * 1024  # the model card's text fields beside the model file
JSON_LIMIT_BYTES = 256 * 1024  # a 64 KB query, escaped, fits with room to spare


def limit_for(settings: Settings, method: str, path: str) -> int:
    """The largest body accepted for a request: a model upload, or a small JSON body."""
    if method == "POST" and path.rstrip("/") == UPLOAD_PATH:
        return settings.api_max_upload_mb * 1024 * 1024 + FORM_MARGIN_BYTES
    return JSON_LIMIT_BYTES


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413)
        self.limit = limit


def _message(limit: int) -> str:
    if limit >= 1024 * 1024:
        return f"The request body is larger than the limit of {limit // (1024 * 1024)} MB."
    return f"The request body is larger than the limit of {limit // 1024} KB."


async def body_too_large(request: Request, exc: Exception) -> JSONResponse:
    """Handler for a chunked body that passed its limit while the framework read it."""
    assert isinstance(exc, BodyTooLarge)
    await record_refusal_async(request, "request_too_large",
                               {"declared_bytes": None, "limit_bytes": exc.limit})
    return error_response("request_too_large", _message(exc.limit), 413)


class BodyLimit:
    """ASGI middleware applying :func:`limit_for` to every HTTP request."""

    def __init__(self, app: ASGIApp, settings: Settings,
                 limit: Callable[[Settings, str, str], int] = limit_for) -> None:
        self.app, self.settings, self.limit = app, settings, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(self.settings, scope["method"], scope["path"])
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            size = int(declared) if declared.isdigit() else None
            if size is None or size > limit:
                authorization = headers.get(b"authorization", b"").decode("latin-1")
                await anyio.to_thread.run_sync(
                    record_refusal, self.settings, authorization, scope["path"],
                    "request_too_large", {"declared_bytes": size, "limit_bytes": limit})
                response = error_response("request_too_large", _message(limit), 413)
                response.headers["Connection"] = "close"
                await response(scope, receive, send)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)
