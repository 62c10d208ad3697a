"""Use cases: one function per user action, shared by the pages and the CLI.

Each function takes a :class:`~portal.services.context.Context` and the acting
:class:`~portal.identity.Principal`, checks permission, performs the write and records its audit
event in the same transaction. Pages, the CLI and the HTTP API (portal.api) call these and
nothing below them.

The use cases are grouped by area (one module each) to keep modules small; see
``docs/decisions/0001-services-package.md``.
"""

from portal.services.context import Context

__all__ = ["Context"]
