"""Does the real launcher work here? Start a probe program through :func:`launcher.launch`
exactly as a job would be started, and check from both sides what it got."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path

from portal.isolation import launcher

PROBE_UID = 150_000
NAMESPACES = ("user", "pid", "net", "ipc", "mnt", "uts", "cgroup")
_PROGRAM = r"""
import json, os, socket, sys
out = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
       "ns": {n: os.readlink("/proc/self/ns/" + n) for n in sys.argv[2].split(",")}}
for line in open("/proc/self/status"):
    key, _, value = line.partition(":")
    if key in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp"):
        out[key] = value.strip()
try:
    socket.socket(socket.AF_INET).connect(("127.0.0.1", 9))
    out["network"] = "connected"
except OSError as exc:
    out["network"] = exc.errno
out["hidden_visible"] = os.path.exists(sys.argv[1])
try:
    open("/escape", "w")
    out["root_writable"] = True
except OSError:
    out["root_writable"] = False
with open("written", "w") as fh:
    fh.write("ok")
print(json.dumps(out))
"""
_cache: dict[tuple, str | None] = {}
_pending: dict[tuple, Future] = {}
_lock = threading.Lock()


def _key() -> tuple:
    return (os.geteuid(), tuple(sorted(launcher.TOOLS.items())), launcher.SECCOMP_PYTHONS)


def _verify(report: dict, workdir: Path) -> str | None:
    """Why the probe's report shows less than full isolation (None when it shows all)."""
    mine = {n: os.readlink(f"/proc/self/ns/{n}") for n in NAMESPACES}
    shared = [n for n in NAMESPACES if report["ns"].get(n) == mine[n]]
    written = workdir / "written"
    problems = {
        f"namespaces shared with the host: {', '.join(shared)}": bool(shared),
        "not running as the job's uid": (report["uid"], report["gid"], report["groups"])
        != (PROBE_UID, PROBE_UID, []),
        "capabilities left": report.get("CapEff") != "0" * 16
        or report.get("CapPrm") != "0" * 16,
        "no-new-privileges not set": report.get("NoNewPrivs") != "1",
        "no seccomp filter": report.get("Seccomp") != "2",
        "network reachable": report.get("network") == "connected",
        "a hidden folder is visible": report.get("hidden_visible") is not False,
        "the jail's root is writable": report.get("root_writable") is not False,
        "the job folder is not writable as the job's uid":
            not written.is_file() or written.stat().st_uid != PROBE_UID,
    }
    return next((text for text, failed in problems.items() if failed), None)


def _run_probe() -> str | None:
    base = Path(tempfile.mkdtemp(prefix="portal-probe-"))
    try:
        hidden, workdir = base / "hidden", base / "job"
        hidden.mkdir()
        (hidden / "secret").write_text("must not be visible")
        workdir.mkdir(mode=0o700)
        os.chown(workdir, PROBE_UID, PROBE_UID)
        jail = launcher.Jail(uid=PROBE_UID, gid=PROBE_UID, packages=(),
                             rlimits=launcher.Rlimits(file_size_bytes=1 << 20,
                                                      address_space_mb=1024, cpu_seconds=30),
                             workdir=workdir, hidden=(hidden,))
        start = launcher.launch(jail, [launcher.python(), "-I", "-c", _PROGRAM, str(hidden),
                                       ",".join(NAMESPACES)])
        try:
            done = subprocess.run(start.argv, pass_fds=start.pass_fds, capture_output=True,
                                  text=True, timeout=60, check=False)
        finally:
            start.close()
        if done.returncode != 0:
            return f"the probe failed to start: {done.stderr.strip()[-300:]}"
        return _verify(json.loads(done.stdout), workdir)
    except launcher.IsolationUnavailable as exc:
        return exc.reason
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        return f"the probe failed: {type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def unavailable_reason() -> str | None:
    """Why jobs cannot be isolated here, or None when the probe shows full isolation. Probed
    once per process and set of tools (waiting for a probe that :func:`prefetch` started)."""
    key = _key()
    with _lock:
        if key in _cache:
            return _cache[key]
        pending = _pending.get(key)
        if pending is None:
            pending = _pending[key] = Future()
            mine = True
        else:
            mine = False
    if mine:
        _probe_into(key, pending)
    return pending.result()


def prefetch() -> None:
    """Start the probe now on a thread of its own, so that its jail runs while the caller does
    other work (a command about to import the query engine and open the store); the first
    :func:`unavailable_reason` waits for it. Nothing is skipped: the same probe, earlier."""
    key = _key()
    with _lock:
        if key in _cache or key in _pending:
            return
        pending = _pending[key] = Future()
    atexit.register(_finish_pending)
    threading.Thread(target=_probe_into, args=(key, pending), daemon=True,
                     name="portal-isolation-probe").start()


def _finish_pending() -> None:
    """At exit, let a probe still running finish (it removes its temporary folder)."""
    with _lock:
        running = list(_pending.values())
    for pending in running:
        with contextlib.suppress(Exception):
            pending.result(timeout=30)


def _probe_into(key: tuple, pending: Future) -> None:
    try:
        reason = _run_probe()
    except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the answer
        with _lock:
            _pending.pop(key, None)
        pending.set_exception(exc)
        return
    with _lock:
        _cache[key] = reason
        _pending.pop(key, None)
    pending.set_result(reason)


def check() -> None:
    """Raise IsolationUnavailable (with the reason) unless the probe shows full isolation."""
    reason = unavailable_reason()
    if reason is not None:
        raise launcher.IsolationUnavailable(reason)


def available() -> bool:
    return unavailable_reason() is None
