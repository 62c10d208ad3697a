"""A pool of warm SQL worker processes (:mod:`portal.query.worker`), for the CLI and for a
long-running Streamlit server alike.

- One pool per process (:func:`get_pool`), created lazily, shut down at interpreter exit.
- Each query borrows one idle worker. A worker that dies (out of memory, CPU limit, crash) or
  overruns the hard deadline (time limit + grace) is killed and replaced; the caller gets a
  clear user error and the next query runs on a fresh worker. The server process never runs
  untrusted SQL itself.
- Workers start with a clean environment (no secrets), in their own empty network namespace
  where the OS allows it, and are recycled after ``MAX_QUERIES_PER_WORKER`` queries.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import select
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portal.errors import InternalError, Rejected
from portal.query.worker import HEADER, MAX_FRAME

_CODE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the portal package
HARD_KILL_GRACE_SECONDS = 3.0
START_TIMEOUT_SECONDS = 60.0
MAX_QUERIES_PER_WORKER = 1000


class WorkerDied(Exception):
    """The worker process exited or stopped answering."""


@dataclass(frozen=True)
class WorkerResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]


_netns: dict[str, list[str]] = {}


def network_isolation_prefix() -> list[str]:
    """``["unshare", "--net"]`` when this process can start children in a new, empty network
    namespace (root with util-linux), else ``[]``. Defense in depth: the locked DuckDB
    connection already refuses network access; a worker in its own namespace has no network
    even if that failed. Probed once per process."""
    if "prefix" not in _netns:
        prefix: list[str] = []
        unshare = shutil.which("unshare")
        if unshare and os.geteuid() == 0:
            try:
                done = subprocess.run([unshare, "--net", sys.executable, "-I", "-c", "0"],
                                      capture_output=True, timeout=30, check=False)
                prefix = [unshare, "--net"] if done.returncode == 0 else []
            except (OSError, subprocess.SubprocessError):
                prefix = []
        _netns["prefix"] = prefix
    return list(_netns["prefix"])


class WorkerProcess:
    def __init__(self, memory_mb: int, threads: int) -> None:
        # A clean environment (no secrets, no PORTAL_* settings); only where the code lives.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(_CODE_ROOT)}
        self.proc = subprocess.Popen(
            [*network_isolation_prefix(), sys.executable, "-m", "portal.query.worker",
             "--memory-mb", str(memory_mb), "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, cwd="/", close_fds=True,
        )
        self.queries = 0
        self._buffer = b""
        ready = self._read_frame(time.monotonic() + START_TIMEOUT_SECONDS)
        if b"ready" not in ready:
            raise WorkerDied("worker did not start")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()

    def _read_exact(self, size: int, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        chunks, have = [self._buffer[:size]], len(self._buffer[:size])
        self._buffer = self._buffer[size:]
        while have < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                raise TimeoutError
            data = os.read(fd, max(65536, size - have))
            if not data:
                raise WorkerDied("worker exited")
            chunks.append(data)
            have += len(data)
        joined = b"".join(chunks)
        self._buffer = joined[size:] + self._buffer
        return joined[:size]

    def _read_frame(self, deadline: float) -> bytes:
        (size,) = HEADER.unpack(self._read_exact(HEADER.size, deadline))
        if size > MAX_FRAME:
            raise WorkerDied("oversized frame")
        return self._read_exact(size, deadline)

    def run(self, request: dict[str, Any], deadline: float) -> WorkerResult:
        payload = json.dumps(request).encode()
        try:
            self.proc.stdin.write(HEADER.pack(len(payload)) + payload)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerDied("worker exited") from None
        self.queries += 1
        header = json.loads(self._read_frame(deadline))
        if not header.get("ok"):
            raise Rejected(header.get("code", "query_error"), header.get("message", ""),
                           kind=str(header.get("kind", "")))
        import pyarrow as pa  # on first use, so that the CLI starts without it

        table = pa.ipc.open_stream(self._read_frame(deadline)).read_all()
        columns = list(table.column_names)
        types = [str(t) for t in table.schema.types]
        data = [table.column(i).to_pylist() for i in range(table.num_columns)]
        rows = list(zip(*data, strict=True)) if data else [() for _ in range(table.num_rows)]
        return WorkerResult(columns, types, rows)


class WorkerPool:
    """``size`` warm workers, each limited to ``memory_mb`` of address space."""

    def __init__(self, size: int, memory_mb: int, threads: int) -> None:
        self.size, self.memory_mb, self.threads = size, memory_mb, threads
        self._idle: queue.LifoQueue[WorkerProcess] = queue.LifoQueue()
        self._started = 0
        self._lock = threading.Lock()
        self._closed = False
        self._live: set[WorkerProcess] = set()
        self.replaced = 0

    def warm(self) -> None:
        """Start every worker now (a server calls this at start-up so the first query of the
        day does not pay for process start)."""
        borrowed = []
        try:
            while True:
                with self._lock:
                    if self._started >= self.size:
                        break
                borrowed.append(self._borrow(wait_seconds=START_TIMEOUT_SECONDS))
        finally:
            for worker in borrowed:
                self._give_back(worker, healthy=True)

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for operations and tests)."""
        with self._lock:
            return sorted(w.proc.pid for w in self._live)

    def _borrow(self, wait_seconds: float) -> WorkerProcess:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._closed:
                raise InternalError()
            if self._started < self.size:
                self._started += 1
                try:
                    worker = WorkerProcess(self.memory_mb, self.threads)
                    self._live.add(worker)
                    return worker
                except BaseException:
                    self._started -= 1
                    raise
        try:
            return self._idle.get(timeout=wait_seconds)
        except queue.Empty:
            raise Rejected("server_busy",
                           "All query workers are busy; try again shortly.") from None

    def _give_back(self, worker: WorkerProcess, healthy: bool) -> None:
        if healthy and worker.alive() and worker.queries < MAX_QUERIES_PER_WORKER \
                and not self._closed:
            self._idle.put(worker)
            return
        worker.kill()
        with self._lock:
            self._live.discard(worker)
            self._started -= 1
            if not healthy:
                self.replaced += 1

    def run(self, path: str, sql: str, max_rows: int, time_limit: float) -> WorkerResult:
        """Run ``sql`` on the extract at ``path``; at most ``max_rows + 1`` rows come back.

        Raises Rejected: ``query_timeout``, ``query_out_of_memory``,
        ``query_resources_exceeded`` (the worker died), ``query_error`` (DuckDB refused the
        SQL), ``server_busy``."""
        import pyarrow as pa  # on first use, so that the CLI starts without it

        worker = self._borrow(wait_seconds=time_limit + 10)
        healthy = False
        request = {"path": path, "sql": sql, "max_rows": max_rows, "time_limit": time_limit}
        try:
            result = worker.run(request, time.monotonic() + time_limit + HARD_KILL_GRACE_SECONDS)
            healthy = True
            return result
        except Rejected:
            healthy = True
            raise
        except TimeoutError:
            raise Rejected("query_timeout", f"The query ran longer than {time_limit:g} seconds "
                                            f"and was stopped.") from None
        except (WorkerDied, ValueError, pa.ArrowException):
            raise Rejected("query_resources_exceeded", "The query exceeded the memory or CPU "
                                                       "allowed and was stopped.") from None
        finally:
            self._give_back(worker, healthy)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            live = list(self._live)
            self._live.clear()
        for worker in live:
            worker.kill()
        while True:
            try:
                self._idle.get_nowait().kill()
            except queue.Empty:
                break


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def get_pool(settings: Any) -> WorkerPool:
    """The process-wide pool for these settings (created on first use, closed at exit)."""
    global _pool
    with _pool_lock:
        key = (settings.query_workers, settings.query_memory_mb, settings.query_threads)
        if _pool is not None and (_pool.size, _pool.memory_mb, _pool.threads) == key \
                and not _pool._closed:
            return _pool
        if _pool is not None:
            _pool.close()
        _pool = WorkerPool(*key)
        return _pool


def shutdown_pool() -> None:
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None


atexit.register(shutdown_pool)
