"""One error taxonomy for the whole portal.

User-facing errors carry a stable machine ``code`` and a human ``message`` that is safe to show:
never a path, a stack trace, SQL internals or data values. Everything else is an internal error,
shown to users only as a generic message with a reference they can quote to staff.
"""

from __future__ import annotations


class PortalError(Exception):
    """Base class. ``code`` is stable (automation depends on it); ``message`` is for people."""

    code: str = "error"
    exit_code: int = 1

    def __init__(self, code: str | None = None, message: str = "", **context: object) -> None:
        self.code = code or self.code
        self.message = message or self.code.replace("_", " ")
        self.context = context
        super().__init__(f"{self.code}: {self.message}")

    def to_dict(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message}}


class UserError(PortalError):
    """An error caused by what the user asked for. Safe to show; exit code 2 on the CLI."""

    code = "invalid_request"
    exit_code = 2


class Denied(UserError):
    """The policy or workflow does not allow this principal to do this (e.g. ``grant_expired``)."""

    code = "denied"


# The name the style guide uses for policy denials.
PolicyDenied = Denied


class Rejected(UserError):
    """The input is understood but refused (e.g. SQL that preflight does not allow)."""

    code = "rejected"


class NotFound(UserError):
    """The thing does not exist, or the principal may not know that it exists."""

    code = "not_found"


class InvalidInput(UserError):
    """Malformed input: bad arguments, bad form values."""

    code = "invalid_input"


class InvalidUpload(UserError):
    """An uploaded file failed intake checks."""

    code = "invalid_upload"


class QuotaExceeded(UserError):
    """A budget or quota is used up."""

    code = "quota_exceeded"


class ConfigError(PortalError):
    """Configuration or a governed file (manifest, policy, task card) is invalid.

    ``problems`` holds one line per problem, each naming the file and line where known.
    """

    code = "invalid_configuration"
    exit_code = 2

    def __init__(self, message: str = "", problems: list[str] | None = None,
                 code: str | None = None) -> None:
        self.problems = list(problems or ([message] if message else []))
        super().__init__(code or self.code, message or "; ".join(self.problems))


class InternalError(PortalError):
    """Something went wrong on the platform side. Users see only ``message`` (generic) and a
    ``reference`` that staff find in the audit event (decision ``failed``) and the server log."""

    code = "internal_error"
    exit_code = 1
    GENERIC = "An internal error occurred. Staff have been notified."

    def __init__(self, message: str = "", code: str | None = None,
                 reference: str | None = None, **context: object) -> None:
        self.reference = reference
        text = message or (f"{self.GENERIC[:-1]} (reference {reference})." if reference
                           else self.GENERIC)
        super().__init__(code or self.code, text, **context)


def public_error(exc: BaseException) -> PortalError:
    """Map any exception to what may be shown to a user: user errors as they are,
    everything else as a generic internal error (details stay in server logs and the audit
    log), keeping its reference."""
    if isinstance(exc, UserError | ConfigError):
        return exc
    return InternalError(reference=getattr(exc, "reference", None))
