"""Observing a jailed process from the parent, while it runs: the program inside cannot report
out (an ONNX model cannot print), so tests read /proc on the host side."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

NAMESPACES = ("user", "pid", "net", "ipc", "mnt", "uts", "cgroup")


def _ancestors(pid: int) -> set[int]:
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return seen


def find_process(marker: str, timeout: float = 30.0) -> int:
    """The pid of our descendant that runs a Python program whose command line contains
    ``marker`` (waits for it): the program itself, not the jail's stages (bwrap, setpriv,
    prlimit) whose command lines contain it too."""
    me = os.getpid()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker.encode() in argv and os.path.basename(argv[0]).startswith(b"python") \
                    and me in _ancestors(int(entry)):
                return int(entry)
        time.sleep(0.05)
    raise AssertionError(f"no process with {marker!r} started")


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


@dataclass
class View:
    """What the host sees of a running process."""

    namespaces: dict[str, str]
    status: dict[str, str]
    limits: dict[str, str]
    files: set[str]  # every path under its root, except /proc and /dev (as the process sees it)


def view(pid: int) -> View:
    namespaces = {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in NAMESPACES}
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = " ".join(value.split())
    limits = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        name, soft = line[:26].strip(), line[26:47].strip()
        limits[name] = soft
    root = f"/proc/{pid}/root"
    files = set()
    for folder, dirs, names in os.walk(root):
        inside = folder[len(root):] or "/"
        if inside == "/":
            dirs[:] = [d for d in dirs if d not in ("proc", "dev")]
        for name in names + dirs:
            files.add(os.path.join(inside, name))
    return View(namespaces, status, limits, files)


def own_namespaces() -> dict[str, str]:
    return {n: os.readlink(f"/proc/self/ns/{n}") for n in NAMESPACES}
