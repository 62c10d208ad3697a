"""Real portal processes for tests: start `portal ...` commands, wait for the store to show
something, and kill a process with everything it started (as a machine that dies would)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def portal_process(args: list[str], env: Mapping[str, str], log: Path | None = None,
                   **popen) -> subprocess.Popen:
    """``portal <args>`` in a new process with exactly ``env`` added to the environment."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - kept by the child
    code = f"import sys; from portal.cli import main; sys.exit(main({args!r}))"
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                            env={**os.environ, **env}, stdout=popen.pop("stdout", out),
                            stderr=popen.pop("stderr", subprocess.STDOUT), **popen)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found.extend(children)
        frontier.extend(children)
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process this test started and everything below it."""
    below = descendants(proc.pid)
    proc.kill()
    for pid in below:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(30)


def kill_while(proc: subprocess.Popen, still_true: Callable[[], object], timeout: float,
               what: str) -> None:
    """Kill ``proc`` and its tree at a moment when ``still_true()`` holds: freeze the tree
    (SIGSTOP), check the condition, then kill; if the condition no longer held, thaw it and try
    again. Makes "killed mid-run" certain on a loaded machine, where a short run may finish
    between a check and a plain kill."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if still_true():
            tree = [proc.pid, *descendants(proc.pid)]
            for pid in tree:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            if still_true():
                kill_tree(proc)
                return
            for pid in tree:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Ask a process we started to stop (SIGTERM), killing it if it does not."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc)


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
