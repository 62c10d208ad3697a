"""The one quoter of SQL identifiers and string literals, for SQL that trusted code writes
(extract builds, held-out features, disclosure rewrites, synthetic data). Untrusted SQL is never
assembled from parts: it runs as written, in a locked worker."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """``name`` as a double-quoted identifier (embedded quotes doubled)."""
    return '"' + str(name).replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """``text`` as a single-quoted string literal (embedded quotes doubled)."""
    return "'" + str(text).replace("'", "''") + "'"
