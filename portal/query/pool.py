"""A pool of warm SQL worker processes (:mod:`portal.query.worker`), for the CLI and for a
long-running Streamlit server alike.

- One pool per process (:func:`get_pool`), created lazily, shut down at interpreter exit.
- Each worker is started for one extract and sees only that file: it runs in a jail
  (:mod:`portal.isolation`: its own user, PID, IPC, network, UTS, cgroup and mount namespaces, a
  read-only view of the interpreter, DuckDB, the worker program and the extract, an
  unprivileged uid of its own in the extract readers' group, no capabilities, a seccomp filter,
  rlimits). Idle workers are kept per extract; when all ``size`` slots are taken, the least
  recently used idle worker of another extract makes room.
- Each query borrows an idle worker of its extract. A worker that dies (out of memory, CPU
  limit, crash) or overruns the hard deadline (time limit + grace) is killed with its whole jail
  and replaced; the caller gets a clear user error and the next query runs on a fresh worker.
  The server process never runs untrusted SQL itself.
- Without a jail the pool refuses (``isolation_unavailable``), unless the development setting
  ``PORTAL_QUERY_ALLOW_UNISOLATED`` lets it start workers as plain processes (still with a
  clean environment and the worker's own limits).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import os
import queue
import secrets
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portal import isolation
from portal.errors import InternalError, Rejected
from portal.query import worker as worker_module
from portal.query.extracts import WORKER_GID, open_to_workers
from portal.query.worker import HEADER, MAX_FRAME

log = logging.getLogger(__name__)
HARD_KILL_GRACE_SECONDS = 3.0
START_TIMEOUT_SECONDS = 60.0
MAX_QUERIES_PER_WORKER = 1000
WORKER_PROGRAM = Path(worker_module.__file__).resolve()
WORKER_IN_JAIL = "/opt/portal/sql_worker.py"
EXTRACT_IN_JAIL = "/data/extract.duckdb"
WORKER_PACKAGES = ("duckdb",)
UID_BASE, UID_SPAN = 150_100, 10_000  # a uid per worker: RLIMIT_NPROC counts its own threads
# Workers of every pool in this process take uids in turn from a random start, so that two
# portal processes on one machine rarely share one.
_uids = itertools.count(secrets.randbelow(UID_SPAN))
_uids_lock = threading.Lock()
_CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}


class WorkerDied(Exception):
    """The worker process exited or stopped answering."""


@dataclass(frozen=True)
class WorkerResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]


def _unopenable() -> Rejected:
    return Rejected("query_failed", "The governed extract could not be opened.")


def worker_command(extract: Path, memory_mb: int, threads: int, uid: int,
                   hidden: tuple[Path, ...], jailed: bool) -> isolation.Launch:
    """The command line of one worker for ``extract``. Raises IsolationUnavailable."""
    args = ["--memory-mb", str(memory_mb), "--threads", str(threads)]
    if not jailed:
        return isolation.Launch([sys.executable, "-I", str(WORKER_PROGRAM), *args,
                                 "--extract", str(extract)], ())
    jail = isolation.Jail(
        uid=uid, gid=WORKER_GID, packages=WORKER_PACKAGES,
        rlimits=isolation.Rlimits(file_size_bytes=0, address_space_mb=memory_mb),
        files=(isolation.Bind(WORKER_PROGRAM, WORKER_IN_JAIL),
               isolation.Bind(extract, EXTRACT_IN_JAIL)),
        hidden=hidden, env={"PYTHONDONTWRITEBYTECODE": "1"})
    return isolation.launch(jail, [isolation.python(), "-I", WORKER_IN_JAIL, *args,
                                   "--extract", EXTRACT_IN_JAIL])


class WorkerProcess:
    def __init__(self, extract: str, start: isolation.Launch) -> None:
        self.extract = extract
        self.proc = isolation.spawn(start, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, env=dict(_CLEAN_ENV), cwd="/",
                                    close_fds=True, start_new_session=True)
        self.queries = 0
        self._buffer = b""
        try:  # a worker that does not start is killed with its jail, whatever went wrong
            ready = self._read_frame(time.monotonic() + START_TIMEOUT_SECONDS)
            if b"ready" not in ready:
                raise WorkerDied("worker did not start")
        except (TimeoutError, WorkerDied, OSError, ValueError):
            self.kill()
            raise WorkerDied("worker did not start") from None
        except BaseException:
            self.kill()
            raise

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pid(self) -> int:
        """The worker program's own process (inside its jail)."""
        return isolation.jailed_pid(self.proc.pid) or self.proc.pid

    def kill(self) -> None:
        isolation.stop(self.proc)
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
        body = json.loads(self._read_frame(deadline))
        columns, types, rows = body["columns"], body["types"], body["rows"]
        if not (isinstance(columns, list) and isinstance(types, list) and isinstance(rows, list)
                and len(rows) == int(header.get("rows", -1))
                and all(isinstance(r, list) and len(r) == len(columns) for r in rows)):
            raise WorkerDied("malformed result frame")
        return WorkerResult([str(c) for c in columns], [str(t) for t in types],
                            [tuple(r) for r in rows])


class WorkerPool:
    """At most ``size`` warm workers, each bound to one extract and limited to ``memory_mb``
    of address space. ``hidden`` (the portal's home) must stay invisible to every worker."""

    def __init__(self, size: int, memory_mb: int, threads: int, hidden: tuple[Path, ...] = (),
                 allow_unisolated: bool = False) -> None:
        self.size, self.memory_mb, self.threads = size, memory_mb, threads
        self.hidden, self.allow_unisolated = tuple(hidden), allow_unisolated
        self._idle: OrderedDict[str, list[WorkerProcess]] = OrderedDict()  # LRU first
        self._cond = threading.Condition()
        self._count = 0  # workers alive or starting
        self._closed = False
        self._live: set[WorkerProcess] = set()
        self.replaced = 0

    def jailed(self) -> bool:
        """Whether workers run jailed; raises InternalError(code='isolation_unavailable') when
        they cannot and the development setting does not allow plain processes."""
        reason = isolation.unavailable_reason()
        if reason is None:
            return True
        if self.allow_unisolated:
            return False
        log.error("SQL workers refused: isolation unavailable (%s)", reason)
        raise InternalError("Query isolation is not available on this server; queries are "
                            "refused until staff restore it.", code="isolation_unavailable")

    def warm(self, extract: str | Path) -> None:
        """Start every free slot for ``extract`` now (a server calls this at start-up for its
        busiest extracts so the first query of the day does not pay for process start)."""
        borrowed = []
        try:
            while True:
                with self._cond:
                    if self._count >= self.size:
                        break
                borrowed.append(self._borrow(str(extract), wait_seconds=START_TIMEOUT_SECONDS))
        finally:
            for worker in borrowed:
                self._give_back(worker, healthy=True)

    def worker_pids(self) -> list[int]:
        """Process ids of the live worker programs (for operations and tests)."""
        with self._cond:
            live = list(self._live)
        return sorted(w.pid() for w in live)

    def _start(self, extract: str) -> WorkerProcess:
        path = Path(extract)
        if not path.is_file():
            raise _unopenable()
        jailed = self.jailed()
        try:
            open_to_workers(path)
        except OSError:
            raise _unopenable() from None
        with _uids_lock:
            uid = UID_BASE + next(_uids) % UID_SPAN
        try:
            start = worker_command(path, self.memory_mb, self.threads, uid, self.hidden, jailed)
        except isolation.IsolationUnavailable as exc:
            log.error("SQL workers refused: isolation unavailable (%s)", exc.reason)
            raise InternalError("Query isolation is not available on this server; queries "
                                "are refused until staff restore it.",
                                code="isolation_unavailable") from None
        return WorkerProcess(extract, start)

    def _take(self, extract: str) -> tuple[WorkerProcess | None, WorkerProcess | None]:
        """Under the lock: an idle worker of ``extract``, or (None, victim) when a slot was
        reserved for a new one (victim: an idle worker of another extract to retire), or
        (None, None) with nothing free."""
        idle = self._idle.get(extract)
        if idle:
            worker = idle.pop()
            if not idle:
                del self._idle[extract]
            return worker, None
        if self._count < self.size:
            self._count += 1
            return None, None
        for other, workers in self._idle.items():  # least recently used extract first
            victim = workers.pop(0)
            if not workers:
                del self._idle[other]
            self._live.discard(victim)
            return None, victim
        raise queue.Empty

    def _borrow(self, extract: str, wait_seconds: float) -> WorkerProcess:
        deadline = time.monotonic() + wait_seconds
        with self._cond:
            while True:
                if self._closed:
                    raise InternalError()
                try:
                    worker, victim = self._take(extract)
                    break
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise Rejected("server_busy", "All query workers are busy; try again "
                                                      "shortly.") from None
                    self._cond.wait(remaining)
        if worker is not None:
            return worker
        if victim is not None:
            victim.kill()  # its slot passes to the new worker
        try:
            worker = self._start(extract)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._live.add(worker)
        return worker

    def _give_back(self, worker: WorkerProcess, healthy: bool) -> None:
        with self._cond:
            if healthy and worker.alive() and worker.queries < MAX_QUERIES_PER_WORKER \
                    and not self._closed:
                self._idle.setdefault(worker.extract, []).append(worker)
                self._idle.move_to_end(worker.extract)
                self._cond.notify()
                return
        worker.kill()
        with self._cond:
            self._live.discard(worker)
            self._count -= 1
            if not healthy:
                self.replaced += 1
            self._cond.notify()

    def run(self, path: str, sql: str, max_rows: int, time_limit: float) -> WorkerResult:
        """Run ``sql`` on the extract at ``path``; at most ``max_rows + 1`` rows come back.

        Raises Rejected: ``query_timeout``, ``query_out_of_memory``,
        ``query_resources_exceeded`` (the worker died), ``query_error`` (DuckDB refused the
        SQL), ``query_failed`` (the extract cannot be opened), ``server_busy``; and
        InternalError(code='isolation_unavailable') when workers cannot be jailed."""
        worker = self._borrow(str(path), wait_seconds=time_limit + 10)
        healthy = False
        request = {"sql": sql, "max_rows": max_rows, "time_limit": time_limit}
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
        except (WorkerDied, ValueError, KeyError, TypeError):
            raise Rejected("query_resources_exceeded", "The query exceeded the memory or CPU "
                                                       "allowed and was stopped.") from None
        finally:
            self._give_back(worker, healthy)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers = set(self._live)
            for idle in self._idle.values():
                workers.update(idle)
            self._live.clear()
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.kill()


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def get_pool(settings: Any) -> WorkerPool:
    """The process-wide pool for these settings (created on first use, closed at exit)."""
    global _pool
    with _pool_lock:
        key = (settings.query_workers, settings.query_memory_mb, settings.query_threads,
               (settings.home,), settings.query_allow_unisolated)
        if _pool is not None and not _pool._closed and (
                _pool.size, _pool.memory_mb, _pool.threads, _pool.hidden,
                _pool.allow_unisolated) == key:
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
