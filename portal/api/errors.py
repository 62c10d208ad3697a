"""API errors: every refusal is ``{"error": {"code", "message"}}`` with a fitting HTTP status, and
nothing else — no paths, stack traces, SQL internals or data values. Portal errors keep their
stable codes; framework errors (unknown route, malformed body) get codes of their own."""

from __future__ import annotations

import logging
import math
import secrets
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from portal.api.deps import record_refusal_async
from portal.errors import (
    ConfigError,
    Denied,
    InternalError,
    NotFound,
    PortalError,
    QuotaExceeded,
    UserError,
)
from portal.services.tokens import UNAUTHENTICATED

log = logging.getLogger("portal.api")
TOO_LARGE = frozenset({"model_too_large", "request_too_large"})
_HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed",
               413: "request_too_large", 415: "unsupported_media_type"}


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    """Every refusal: a stable machine ``code`` and a sentence for people."""

    error: ErrorBody


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats (NaN, ±Infinity) as None: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class SafeJSONResponse(JSONResponse):
    """Standard JSON only: a NaN in a query result or a report is sent as ``null``."""

    def render(self, content: Any) -> bytes:
        return super().render(_finite(jsonable_encoder(content)))


def status_of(exc: PortalError) -> int:
    """The HTTP status for a portal error (401 no valid token, 403 denied, 404, 413, 422, 429)."""
    if exc.code in UNAUTHENTICATED:
        return 401
    if exc.code in TOO_LARGE:
        return 413
    if isinstance(exc, QuotaExceeded):
        return 429
    if isinstance(exc, Denied):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, UserError):
        return 422
    if isinstance(exc, ConfigError):
        return 503
    return 500


def error_response(code: str, message: str, status: int) -> JSONResponse:
    headers = {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{code}"'}
    return SafeJSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                            headers=headers if status == 401 else None)


def internal_response() -> JSONResponse:
    reference = secrets.token_hex(4)
    log.error("internal error (reference %s)", reference, exc_info=True)
    shown = InternalError()
    return error_response(shown.code, f"{shown.message} Reference: {reference}.", 500)


async def portal_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PortalError)
    status = status_of(exc)
    if status == 500:
        return internal_response()
    if status == 503:  # a governed file is invalid: its problems name files, so stay generic
        log.error("configuration error: %s", exc.message)
        return error_response("service_unavailable", "The portal cannot serve this request "
                              "until staff fix its configuration.", 503)
    return error_response(exc.code, exc.message, status)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """Malformed parameters or body: which fields and why, never the values sent."""
    assert isinstance(exc, RequestValidationError)
    problems = []
    for item in exc.errors()[:5]:
        where = ".".join(str(p) for p in item.get("loc", ()))[:80]
        problems.append(f"{where}: {str(item.get('msg', 'invalid'))[:120]}")
    await record_refusal_async(request, "invalid_request",
                               {"fields": [p.split(":")[0] for p in problems]})
    return error_response("invalid_request", "The request is not valid: " + "; ".join(problems),
                          422)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    if exc.status_code == 400:  # a body the framework could not parse (e.g. broken multipart)
        await record_refusal_async(request, "invalid_request", {"body": "unreadable"})
    messages = {"not_found": "There is no such API endpoint.",
                "method_not_allowed": "This endpoint does not accept that method.",
                "request_too_large": "The request body is larger than this endpoint accepts.",
                "invalid_request": "The request body could not be read."}
    return error_response(code, messages.get(code, "The request was refused."), exc.status_code)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    return internal_response()


HANDLERS = {PortalError: portal_error, RequestValidationError: validation_error,
            HTTPException: http_error, Exception: unexpected_error}

# What every operation may answer besides success, for the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text} for status, text in (
        (400, "The body could not be parsed (broken JSON or multipart encoding)"),
        (401, "No valid token (missing, invalid, expired or revoked)"),
        (403, "Denied: the token's scope, a suspension, no grant, or the policy"),
        (404, "Not found (or not visible to the team)"),
        (413, "Upload or request body too large"),
        (422, "Invalid or refused input"),
        (429, "Budget or quota used up"),
    )}
