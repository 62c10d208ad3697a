"""The SQL worker process: runs untrusted SQL against one governed extract at a time.

Started by :mod:`portal.query.pool` as ``python -m portal.query.worker --memory-mb M --threads T``
with a clean environment. Before reading any request it limits its own address space
(``RLIMIT_AS``), core dumps and CPU time, and it opens extracts only with
:data:`LOCKED_CONFIG` (read-only, no external access, configuration locked, no temp folder, no
extension loading). Requests and replies are length-prefixed frames on stdin/stdout: JSON for
control, Arrow IPC for result rows (never pickle).

Each query gets its own cursor, a timer thread that interrupts it at the time limit, a per-query
CPU soft limit, and a result bounded to ``max_rows + 1`` rows by a LIMIT pushed into the plan.

Security property 2 (docs/security-properties.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import struct
import sys
import threading
from collections import OrderedDict
from typing import Any, BinaryIO

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
CPU_HARD_SECONDS = 6 * 3600
CONNECTION_CACHE = 4
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
    def __init__(self, memory_mb: int, threads: int) -> None:
        import duckdb

        self.duckdb = duckdb
        # DuckDB's own limit sits below the OS limit so it fails cleanly first.
        self.config = locked_config(max(64, memory_mb // 2), threads)
        self.threads = threads
        self.connections: OrderedDict[str, Any] = OrderedDict()

    def connection(self, path: str) -> Any:
        con = self.connections.pop(path, None)
        if con is None:
            con = self.duckdb.connect(path, read_only=True, config=dict(self.config))
        self.connections[path] = con
        while len(self.connections) > CONNECTION_CACHE:
            _, old = self.connections.popitem(last=False)
            old.close()
        return con

    def run(self, request: dict[str, Any]) -> tuple[dict[str, Any], bytes | None]:
        try:
            cursor = self.connection(request["path"]).cursor()
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
            return {"ok": False, "code": "query_failed",
                    "message": "The query failed in the database engine."}, None
        finally:
            timer.cancel()
            cursor.close()

    def _execute(self, cursor: Any,
                 request: dict[str, Any]) -> tuple[dict[str, Any], bytes | None]:
        import pyarrow as pa

        relation = cursor.sql(request["sql"])
        if relation is None:
            raise self.duckdb.InvalidInputException("the statement returns no result")
        table = relation.limit(int(request["max_rows"]) + 1).to_arrow_table()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        body = sink.getvalue().to_pybytes()
        if len(body) > MAX_FRAME:
            message = "The result is larger than 64 MB; select fewer or smaller values."
            return {"ok": False, "code": "result_too_large", "message": message}, None
        return {"ok": True, "rows": table.num_rows}, body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portal.query.worker")
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args(argv)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the real stdout
    worker = Worker(args.memory_mb, args.threads)
    import pyarrow  # noqa: F401  (import before the address-space limit bites)

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
