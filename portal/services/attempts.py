"""One audit event per attempt: the refusal or failure of a use case is recorded for it.

Every use case is declared with :func:`use_case` (and every CLI command runs inside
:func:`attempt`). A use case writes its own events when it acts, and may write its own refusal
with richer details; when it raises without an event of its own in the store (its transaction
rolled back, or it was refused before writing anything), the attempt records one:

- ``denied`` for Denied, NotFound and QuotaExceeded; ``rejected`` for other user errors; the
  reason is the error's stable code;
- ``failed`` for everything else, with the real cause for staff (error class, the code line that
  raised, a reference) while the caller gets a generic InternalError carrying that reference.

Attempts nest: the innermost one that sees the error records it, the outer ones see that event
and add nothing, so an attempt never writes two. A successful read writes nothing here (no
noise on page reruns); the use case decides what its success records.
"""

from __future__ import annotations

import functools
import inspect
import logging
import secrets
import sqlite3
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from portal import audit
from portal.errors import (
    Denied,
    InternalError,
    NotFound,
    PortalError,
    QuotaExceeded,
    UserError,
)
from portal.identity import Principal

log = logging.getLogger("portal.attempts")
F = TypeVar("F", bound=Callable[..., Any])
Target = str | Callable[[Mapping[str, Any]], str | None] | None
REF_CHARS = 100
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def decision_for(exc: BaseException) -> str:
    """The audit decision of an attempt that raised ``exc``."""
    if isinstance(exc, Denied | NotFound | QuotaExceeded):
        return "denied"
    return "rejected" if isinstance(exc, UserError) else "failed"


def ref(value: object) -> str:
    """A caller-supplied reference, bounded, for audit targets and details."""
    return str(value)[:REF_CHARS]


def _where(exc: BaseException) -> str:
    """The innermost line of the portal's own code that the error passed through."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(_PACKAGE_ROOT)]
    frame = (ours or frames or [None])[-1]
    if frame is None:
        return "unknown"
    try:
        name = str(Path(frame.filename).resolve().relative_to(_PACKAGE_ROOT))
    except ValueError:
        name = Path(frame.filename).name
    return f"{name}:{frame.lineno} in {frame.name}"


def describe_failure(exc: BaseException, reveal: bool = True,
                     ) -> tuple[str, dict[str, Any], BaseException]:
    """(reason, details for staff, what the caller gets) for a failure that is not the caller's
    doing. The details name the error's class, the portal code line it passed last and a
    reference, never its arguments (they may hold data values). The caller gets the error
    itself only for a ConfigError or InternalError shown to staff (``reveal``); otherwise a
    generic InternalError carrying the reference, which the log records with the trace."""
    reference = secrets.token_hex(4)
    log.error("internal error (reference %s)", reference, exc_info=exc)
    if isinstance(exc, PortalError):
        details = {"cause": type(exc).__name__, "message": exc.message[:500],
                   "where": _where(exc), "reference": reference}
        if reveal:
            if isinstance(exc, InternalError) and not exc.reference:
                exc.reference = reference
            return exc.code, details, exc
        return exc.code, details, InternalError(reference=reference)
    return "internal_error", {"cause": f"{type(exc).__module__}.{type(exc).__qualname__}",
                              "where": _where(exc), "reference": reference}, \
        InternalError(reference=reference)


def _record(conn: sqlite3.Connection, actor: str, team: str | None, action: str,
            target: str | None, decision: str, reason: str,
            details: dict[str, Any]) -> None:
    try:
        audit.record(conn, actor=actor or "anonymous", team=team, action=action, target=target,
                     decision=decision, reason=reason, details=details)
    except Exception:  # the store itself failed: the caller still gets the original error
        log.exception("could not audit the refused attempt %s by %s", action, actor)


@contextmanager
def attempt(conn: Callable[[], sqlite3.Connection], *, actor: str, action: str,
            team: str | None = None, target: str | None = None,
            details: Mapping[str, Any] | None = None,
            ignore: tuple[type[BaseException], ...] = (),
            reveal: bool = True) -> Iterator[None]:
    """Run the body as one attempt: when it raises an Exception and no event it recorded is in
    the store, record the refusal or failure (see the module docstring). ``conn`` gives the
    store connection, opened only when needed (the CLI opens it lazily). Non-user failures that
    are not PortalErrors are re-raised as InternalError (from the original), and so are
    ConfigErrors and InternalErrors unless ``reveal`` (the actor is staff or the operator): a
    broken policy file is the platform's failure, not something to show a startup. Exceptions
    of the ``ignore`` types pass through unrecorded (a closed pipe is not a failure)."""
    with audit.watch() as seen:
        try:
            yield
        except ignore:
            raise
        except Exception as exc:
            shown: BaseException = exc
            if not getattr(exc, "_portal_audited", False):
                store = conn()
                if not audit.any_stored(store, seen):
                    extra = dict(details or {})
                    decision = decision_for(exc)
                    if decision == "failed":
                        reason, more, shown = describe_failure(exc, reveal)
                        extra |= more
                    else:
                        reason = getattr(exc, "code", "error")
                    _record(store, actor, team, action, target, decision, reason, extra)
                shown._portal_audited = True  # type: ignore[attr-defined]
            if shown is exc:
                raise
            raise shown from exc


def _resolve(spec: Target, arguments: Mapping[str, Any]) -> Any:
    if spec is None:
        return None
    if callable(spec):
        return spec(arguments)
    return spec.format(**{k: ref(v) for k, v in arguments.items()})


def _reveals(ctx: Any, principal: Principal) -> bool:
    """Staff and the operator see a failure's detail; members a generic message."""
    from portal import authz

    try:
        return authz.can_staff_or_operator(ctx.conn, principal)
    except Exception:  # a store that cannot answer reveals nothing
        return False


def use_case(action: str | Callable[[Mapping[str, Any]], str], target: Target = None, *,
             details: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
             actor: str = "system") -> Callable[[F], F]:
    """Declare a use case ``f(ctx, principal_or_other, ...)`` and run every call as one
    :func:`attempt`. ``action``: the audit action (or a function of the call's arguments);
    ``target``: a format string over the arguments (each bounded) or a function of them;
    ``details``: a function of the arguments giving refusal details; ``actor``: who acts when
    the second argument is not a Principal (operator use cases)."""

    def wrap(func: F) -> F:
        signature = inspect.signature(func)
        names = list(signature.parameters)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = bound.arguments
            ctx = arguments[names[0]]
            who = arguments.get(names[1]) if len(names) > 1 else None
            principal = who if isinstance(who, Principal) else None
            with attempt(lambda: ctx.conn,
                         actor=principal.actor if principal else actor,
                         team=principal.team if principal else None,
                         action=_resolve(action, arguments),
                         target=_resolve(target, arguments),
                         details=details(arguments) if details else None,
                         reveal=principal is None or _reveals(ctx, principal)):
                return func(*args, **kwargs)

        run.audit_action = action  # type: ignore[attr-defined]
        return run  # type: ignore[return-value]

    return wrap
