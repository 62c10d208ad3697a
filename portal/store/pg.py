"""The PostgreSQL engine of the store, behind the same small API the query modules use on SQLite.

:class:`PgConnection` offers what the code calls on a ``sqlite3.Connection``: ``execute(sql,
params)`` with ``?`` placeholders, cursors with ``fetchone``/``fetchall``/iteration/``rowcount``,
rows indexable by position and by column name, ``in_transaction`` and ``close``. Errors are raised
as the ``sqlite3`` exception classes the code already catches (``IntegrityError`` for constraint
and append-only violations, ``OperationalError`` for lock time-outs and lost connections), with
the psycopg error as their cause.

Values are bound client-side (``psycopg.ClientCursor``) so untyped parameters behave as on SQLite
(``? IS NULL``, ``LIMIT ?``), and Python booleans are stored as 0/1 like SQLite does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Dumper
from psycopg.pq import TransactionStatus

from portal.store.dialect import to_pyformat

# Lock time-outs, cancelled statements, serialization failures and deadlocks: a busy store.
_BUSY = (pg_errors.LockNotAvailable, pg_errors.QueryCanceled, pg_errors.SerializationFailure,
         pg_errors.DeadlockDetected)


class Row(tuple):
    """A result row like ``sqlite3.Row``: a tuple that can also be read by column name
    (case-insensitively), with ``keys()`` so that ``dict(row)`` works."""

    _names: tuple[str, ...]
    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: tuple[str, ...], index: dict[str, int]):
        row = super().__new__(cls, values)
        row._names, row._index = names, index
        return row

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._index[key.lower()])
            except KeyError:
                raise IndexError("No item with that key") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: psycopg.Cursor) -> Any:
    names = tuple(c.name for c in cursor.description or ())
    index: dict[str, int] = {}
    for position, name in enumerate(names):
        index.setdefault(name.lower(), position)  # like sqlite3.Row: the first column wins
    return lambda values: Row(values, names, index)


class _BoolAsInt(Dumper):
    """Booleans are stored as INTEGER 0/1 on both engines."""

    oid = 20  # int8

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"

    def quote(self, obj: bool) -> bytes:
        return self.dump(obj)


def translate_error(exc: psycopg.Error) -> sqlite3.Error:
    """The ``sqlite3`` exception the rest of the code expects for a psycopg error."""
    message = exc.diag.message_primary or str(exc)
    if isinstance(exc, pg_errors.IntegrityError | pg_errors.RaiseException):
        return sqlite3.IntegrityError(message)
    if isinstance(exc, _BUSY):
        return sqlite3.OperationalError(f"database is locked: {message}")
    if isinstance(exc, psycopg.OperationalError | psycopg.ProgrammingError | psycopg.DataError):
        return sqlite3.OperationalError(message)
    return sqlite3.DatabaseError(message)


class PgCursor:
    """The part of a ``sqlite3.Cursor`` the store's callers use."""

    def __init__(self, cursor: psycopg.Cursor):
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def description(self):
        return self._cursor.description

    @property
    def lastrowid(self) -> int:
        raise sqlite3.NotSupportedError("lastrowid is not portable: use INSERT ... RETURNING id")

    def fetchone(self) -> Row | None:
        if self._cursor.description is None:
            return None
        return self._cursor.fetchone()

    def fetchall(self) -> list[Row]:
        if self._cursor.description is None:
            return []
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())

    def close(self) -> None:
        self._cursor.close()


class PgConnection:
    """A store connection on PostgreSQL (autocommit outside :func:`portal.store.db.transaction`)."""

    engine = "postgresql"

    def __init__(self, url: str, settings: Any = None):
        try:
            self.raw = psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor,
                                       row_factory=_row_factory, connect_timeout=10)
        except psycopg.Error as exc:
            raise translate_error(exc) from exc
        self.raw.adapters.register_dumper(bool, _BoolAsInt)
        self.url = url
        self.settings = settings

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgCursor:
        """Run one statement (``?`` placeholders). Raises sqlite3 errors (see module doc)."""
        cursor = self.raw.cursor()
        try:
            if params:
                cursor.execute(to_pyformat(sql), tuple(params))
            else:
                cursor.execute(sql)
        except psycopg.Error as exc:
            raise translate_error(exc) from exc
        return PgCursor(cursor)

    def executescript(self, sql: str) -> None:
        """Run several statements without parameters in one round trip."""
        self.execute(sql)

    def close(self) -> None:
        self.raw.close()

    @property
    def closed(self) -> bool:
        return self.raw.closed
