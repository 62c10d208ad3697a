"""The SQL worker process: runs untrusted SQL against the one governed extract it was started for.

Started by :mod:`portal.query.pool` in a jail (:mod:`portal.isolation`) as
``python -I worker.py --memory-mb M --threads T --extract PATH``: the extract is the only data
file it can see. It imports nothing from the portal (only DuckDB is in the jail).
Before reading any request it limits its own address space (``RLIMIT_AS``), core dumps, file
size and CPU time, and it opens the extract only with :func:`locked_config` (read-only, no
external access, configuration locked, no temp folder, no extension loading). Requests and
replies are length-prefixed JSON frames on stdin/stdout (never pickle): the result rows travel
as plain JSON values (:func:`plain`), so neither side needs pyarrow and a worker starts faster
(docs/decisions/0012-integrity-and-speed.md).

Each query gets its own cursor, a timer thread that interrupts it at the time limit, a per-query
CPU soft limit, and a result bounded to ``max_rows + 1`` rows by a LIMIT pushed into the plan.

Security property 2 (docs/security-properties.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import os
import re
import resource
import struct
import sys
import threading
from typing import Any, BinaryIO

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
CPU_HARD_SECONDS = 6 * 3600
_PATHLIKE = re.compile(r"(?:[A-Za-z]:)?(?:/[^\s'\"/]+){2,}/?")
_USER_ERRORS = ("Binder", "Catalog", "Parser", "Conversion", "InvalidInput", "OutOfRange",
                "NotImplemented", "Constraint", "TypeMismatch", "Dependency", "Syntax")


def locked_config(memory_mb: int, threads: int) -> dict[str, Any]:
    """The connection settings of ARCHITECTURE.md section 1 (verified in FIELD-NOTES.md)."""
    return {
        "enable_external_access": False,
        "temp_directory": "",
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "allow_persistent_secrets": False,
        "python_enable_replacements": False,
        "threads": max(1, threads),
        "memory_limit": f"{max(64, memory_mb)}MB",
        "lock_configuration": True,
    }


def connect_locked(duckdb: Any, database: str = ":memory:", *, read_only: bool = False,
                   memory_mb: int = 1024, threads: int = 1) -> Any:
    """The one way the portal opens DuckDB for anything but building files: ``database``
    opened with :func:`locked_config`; once it is open the local file system is disabled too
    (DuckDB refuses that setting before the database is open), so not even that database's
    own file can be read as a blob; then the configuration is locked. ``duckdb`` is the module
    (this file imports nothing at load, so that it runs alone in a jail)."""
    con = duckdb.connect(database, read_only=read_only,
                         config={**locked_config(memory_mb, threads), "lock_configuration": False})
    try:
        con.execute("SET disabled_filesystems = 'LocalFileSystem'")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def plain(value: Any) -> Any:
    """A DuckDB value as plain JSON: numbers, text, booleans and null as they are, decimals as
    floats, dates and times as ISO text, bytes as hex, lists and structs element by element,
    anything else as its text. The one conversion of result values (the service uses it too)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


def read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ValueError("frame too large")
    return stream.read(size)


def write_frame(stream: BinaryIO, payload: bytes) -> None:
    stream.write(HEADER.pack(len(payload)) + payload)
    stream.flush()


def _limit_self(memory_mb: int) -> None:
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_HARD_SECONDS, CPU_HARD_SECONDS))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # the worker never writes files


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def safe_message(text: str) -> str:
    """First line of a DuckDB error with anything path-shaped removed."""
    line = (text or "").strip().splitlines()[0] if text else ""
    return _PATHLIKE.sub("<hidden>", line)[:400]


class Worker:
    def __init__(self, memory_mb: int, threads: int, extract: str) -> None:
        import duckdb

        self.duckdb = duckdb
        # DuckDB's own limit sits below the OS limit so it fails cleanly first.
        self.memory_mb = max(64, memory_mb // 2)
        self.config = locked_config(self.memory_mb, threads)
        self.threads = threads
        self.extract = extract
        self.con: Any = None

    def connection(self) -> Any:
        """The extract, opened read-only and locked (:func:`connect_locked`). No untrusted SQL
        runs before that."""
        if self.con is None:
            self.con = connect_locked(self.duckdb, self.extract, read_only=True,
                                      memory_mb=self.memory_mb, threads=self.threads)
        return self.con

    def run(self, request: dict[str, Any]) -> tuple[dict[str, Any], bytes | None]:
        try:
            cursor = self.connection().cursor()
        except self.duckdb.Error:
            return {"ok": False, "code": "query_failed",
                    "message": "The governed extract could not be opened."}, None
        limit = float(request["time_limit"])
        timer = threading.Timer(limit, cursor.interrupt)
        soft = int(_cpu_used() + limit * self.threads + 5)
        resource.setrlimit(resource.RLIMIT_CPU, (min(soft, CPU_HARD_SECONDS), CPU_HARD_SECONDS))
        timer.start()
        try:
            return self._execute(cursor, request)
        except self.duckdb.InterruptException:
            message = f"The query ran longer than {limit:g} seconds and was stopped."
            return {"ok": False, "code": "query_timeout", "message": message}, None
        except (self.duckdb.OutOfMemoryException, MemoryError):
            return {"ok": False, "code": "query_out_of_memory",
                    "message": "The query needed more memory than allowed and was stopped."}, None
        except self.duckdb.Error as exc:
            kind = type(exc).__name__
            if kind.startswith(_USER_ERRORS):
                return {"ok": False, "code": "query_error", "message": safe_message(str(exc)),
                        "kind": kind}, None
            return {"ok": False, "code": "query_failed", "kind": kind,
                    "message": "The query failed in the database engine."}, None
        finally:
            timer.cancel()
            cursor.close()

    def _execute(self, cursor: Any,
                 request: dict[str, Any]) -> tuple[dict[str, Any], bytes | None]:
        relation = cursor.sql(request["sql"])
        if relation is None:
            raise self.duckdb.InvalidInputException("the statement returns no result")
        limited = relation.limit(int(request["max_rows"]) + 1)  # pushed into the plan
        columns, types = list(limited.columns), [str(t) for t in limited.types]
        rows = [[plain(v) for v in row] for row in limited.fetchall()]
        body = json.dumps({"columns": columns, "types": types, "rows": rows},
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if len(body) > MAX_FRAME:
            message = "The result is larger than 64 MB; select fewer or smaller values."
            return {"ok": False, "code": "result_too_large", "message": message}, None
        return {"ok": True, "rows": len(rows)}, body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portal.query.worker")
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--extract", required=True)
    args = parser.parse_args(argv)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the real stdout
    worker = Worker(args.memory_mb, args.threads, args.extract)  # imports DuckDB
    _limit_self(args.memory_mb)
    write_frame(stdout, json.dumps({"ready": os.getpid()}).encode())
    while True:
        frame = read_frame(stdin)
        if frame is None:
            return 0
        header, body = worker.run(json.loads(frame))
        write_frame(stdout, json.dumps(header).encode())
        if body is not None:
            write_frame(stdout, body)


if __name__ == "__main__":
    sys.exit(main())
