"""The one command line that starts untrusted work: the model scorer and the SQL workers alike.

A jail is two bubblewrap stages and three small util-linux tools, each exec'd in turn by the
child itself (nothing runs in the parent between fork and exec, so no ``preexec_fn``):

1. ``prlimit`` sets the job's resource limits (address space, CPU, file size, open files,
   processes, no core dumps); every later stage inherits them.
2. ``bwrap`` as root builds the view: new PID, IPC, network, UTS and cgroup namespaces and a new
   mount namespace whose root is an empty tmpfs holding only read-only binds of what the program
   needs (:mod:`portal.isolation.binds`), the job's files, ``/proc``, a minimal ``/dev`` and,
   for the scorer, its job folder; the root is then made read-only. Capabilities are dropped to
   the three the next stage needs. Its init process (PID 1 of the jail, root with only those
   capabilities, never running job code) dies with the parent and takes every process of the
   jail with it: killing the first process kills the whole jail.
3. ``setpriv`` drops to the job's own unprivileged uid and gid, clears supplementary groups,
   empties the capability sets and sets no-new-privileges.
4. ``bwrap`` again, now unprivileged: a new user namespace (mapping only that uid), further user
   namespaces disabled, the seccomp filter of :mod:`portal.isolation.seccomp_filter`, then exec
   of the program.

Everything here raises :class:`IsolationUnavailable` rather than starting a job with less.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from portal.isolation import binds as found
from portal.isolation.binds import Bind

WORKDIR = "/job"
SECCOMP_SCRIPT = Path(__file__).resolve().parent / "seccomp_filter.py"
# Tools by name; a test may point one at a missing file to see the refusal.
TOOLS: dict[str, str | None] = {}
# Interpreters tried, in order, for libseccomp's Python binding (Debian's python3-seccomp is
# built for the system Python).
SECCOMP_PYTHONS = (sys.executable, "/usr/bin/python3")


class IsolationUnavailable(Exception):
    """A jail cannot be set up here; ``reason`` says why (for logs and staff, not for users)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Rlimits:
    file_size_bytes: int
    address_space_mb: int | None = None  # None: the program sets its own
    cpu_seconds: int | None = None
    open_files: int = 64
    processes: int = 64


@dataclass(frozen=True)
class Jail:
    """One job's jail. ``files`` are the program and the one input it needs (read-only);
    ``workdir`` is the only writable folder (bound at :data:`WORKDIR`, the working
    directory); ``hidden`` must stay invisible: a needed bind that would show any part of them
    is refused."""

    uid: int
    gid: int
    packages: tuple[str, ...]
    rlimits: Rlimits
    files: tuple[Bind, ...] = ()
    workdir: Path | None = None
    hidden: tuple[Path, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Launch:
    """Arguments for ``subprocess.Popen`` (``pass_fds`` must be passed); call :meth:`close`
    once the process has started."""

    argv: list[str]
    pass_fds: tuple[int, ...]

    def close(self) -> None:
        for fd in self.pass_fds:
            with contextlib.suppress(OSError):
                os.close(fd)


# bubblewrap's --die-with-parent (PR_SET_PDEATHSIG) kills a jail when the *thread* that
# started it ends, and a server's request threads come and go: every jail is started from this
# one long-lived thread, so a jail dies with the process, not with a request.
_spawner = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                 thread_name_prefix="portal-jail-spawner")


def spawn(start: Launch, **popen: object) -> subprocess.Popen:
    """``subprocess.Popen(start.argv, pass_fds=start.pass_fds, **popen)`` from the spawner
    thread; closes ``start``'s descriptors afterwards. Raises what Popen raises."""
    try:
        return _spawner.submit(subprocess.Popen, start.argv, pass_fds=start.pass_fds,
                               **popen).result()
    finally:
        start.close()


def tool(name: str) -> str:
    """Absolute path of a required tool. Raises IsolationUnavailable when it is missing."""
    path = TOOLS[name] if name in TOOLS else shutil.which(name, path="/usr/bin:/bin:/usr/sbin")
    if not path or not os.access(path, os.X_OK):
        raise IsolationUnavailable(f"{name} is not installed")
    return path


@functools.lru_cache(maxsize=4)
def _seccomp_program(pythons: tuple[str, ...]) -> bytes:
    for python in pythons:
        if not os.path.exists(python):
            continue
        try:
            done = subprocess.run([python, "-I", str(SECCOMP_SCRIPT)], capture_output=True,
                                  timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0 and done.stdout and len(done.stdout) % 8 == 0:
            return done.stdout
    raise IsolationUnavailable("no seccomp filter: libseccomp's Python binding (Debian "
                               "package python3-seccomp) is not installed")


def seccomp_program() -> bytes:
    """The compiled filter (classic BPF), built once per process. Raises
    IsolationUnavailable when libseccomp's binding is missing."""
    return _seccomp_program(tuple(SECCOMP_PYTHONS))


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def _check_hidden(needed: Sequence[Bind], hidden: Sequence[Path]) -> None:
    for folder in hidden:
        real = folder.resolve()
        for bind in needed:
            if _overlaps(bind.source, real) or _overlaps(Path(bind.dest), real):
                raise IsolationUnavailable(
                    f"the portal's home cannot be hidden: {bind.dest} is needed in the jail "
                    f"and overlaps {folder}")


def _folders(dests: Sequence[str]) -> list[str]:
    """Every parent folder of ``dests``, outermost first (created 0755 in the jail's root)."""
    parents = set()
    for dest in dests:
        parent = os.path.dirname(dest)
        while parent not in ("/", ""):
            parents.add(parent)
            parent = os.path.dirname(parent)
    return sorted(parents, key=lambda p: (p.count("/"), p))


def limits_command(r: Rlimits) -> list[str]:
    """``prlimit ... --``: the command prefix that sets ``r`` in the child before it execs the
    rest. Raises IsolationUnavailable when prlimit is missing."""
    argv = [tool("prlimit"), f"--fsize={r.file_size_bytes}", f"--nofile={r.open_files}",
            f"--nproc={r.processes}", "--core=0"]
    if r.address_space_mb is not None:
        argv.append(f"--as={r.address_space_mb * 1024 * 1024}")
    if r.cpu_seconds is not None:
        argv.append(f"--cpu={r.cpu_seconds}:{r.cpu_seconds + 1}")
    return [*argv, "--"]


def _view(jail: Jail, needed: Sequence[Bind], symlinks: Sequence[tuple[str, str]]) -> list[str]:
    dests = [b.dest for b in needed] + [link for _, link in symlinks]
    argv: list[str] = []
    for folder in _folders(dests + ([WORKDIR] if jail.workdir else [])):
        argv += ["--perms", "0755", "--dir", folder]
    for bind in needed:
        argv += ["--ro-bind", str(bind.source), bind.dest]
    for target, link in symlinks:
        argv += ["--symlink", target, link]
    if jail.workdir is not None:
        argv += ["--bind", str(jail.workdir), WORKDIR]
    # The second stage mounts its own empty root on /tmp before it binds this view into it.
    return [*argv, "--perms", "0755", "--dir", "/tmp",  # noqa: S108 - a mount point only
            "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/"]


def verify(jail: Jail) -> tuple[Bind, ...]:
    """Check that ``jail`` can be set up here; return what it binds besides ``jail.files``.

    Raises IsolationUnavailable when the portal does not run as root (needed to give each job
    its own uid), a tool, a package or the seccomp binding is missing, or a needed bind would
    show part of ``jail.hidden``."""
    if os.geteuid() != 0:
        raise IsolationUnavailable("the portal must start as root to run each job as its "
                                   "own unprivileged uid")
    bwrap, setpriv = tool("bwrap"), tool("setpriv")
    tool("prlimit")
    seccomp_program()
    try:
        packages = found.distributions(tuple(jail.packages))
    except Exception as exc:  # a package the program imports is not installed
        raise IsolationUnavailable(f"a package the jail needs is missing: {exc}") from None
    system = (*found.interpreter().binds, *packages,
              Bind(Path(bwrap).resolve(), bwrap), Bind(Path(setpriv).resolve(), setpriv))
    _check_hidden(system, jail.hidden)
    return system


def launch(jail: Jail, program: Sequence[str]) -> Launch:
    """The command that runs ``program`` (its first item: :func:`python` or a path bound by
    ``jail.files``) in ``jail``. Raises IsolationUnavailable as :func:`verify` does."""
    system = verify(jail)
    filter_fd = os.memfd_create("portal-seccomp", 0)
    os.write(filter_fd, seccomp_program())
    os.lseek(filter_fd, 0, os.SEEK_SET)
    env: list[str] = []
    for name, value in {"PATH": "/usr/bin", "LANG": "C.UTF-8", **jail.env}.items():
        env += ["--setenv", name, value]
    bwrap, setpriv = tool("bwrap"), tool("setpriv")
    argv = [*limits_command(jail.rlimits),
            bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup", "--hostname", "jail", "--die-with-parent",
            "--new-session", "--clearenv", *env,
            "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
            "--cap-add", "CAP_SETPCAP",
            *_view(jail, (*system, *jail.files), found.interpreter().symlinks),
            "--", setpriv, f"--reuid={jail.uid}", f"--regid={jail.gid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
            "--", bwrap, "--unshare-user", "--disable-userns", "--uid", str(jail.uid),
            "--gid", str(jail.gid), "--dev-bind", "/", "/", "--die-with-parent",
            "--seccomp", str(filter_fd), "--chdir", WORKDIR if jail.workdir else "/",
            "--", *program]
    return Launch(argv, (filter_fd,))


def python() -> str:
    """The interpreter's path inside a jail (the same path as on the host)."""
    return found.interpreter().python


def jailed_pid(pid: int) -> int | None:
    """The process that a jail started as ``pid`` finally runs (the program, once every
    stage has exec'd), found by following the stages' children; None when it has not started
    yet or has ended."""
    current = pid
    for _ in range(8):
        try:
            name = Path(f"/proc/{current}/comm").read_text().strip()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            return None
        if name not in _STAGES:
            return current
        if not children:
            return None
        current = int(children[0])
    return None


_STAGES = ("prlimit", "bwrap", "setpriv")


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Kill a jail started as ``proc`` and return once none of its processes runs.

    The jail's init (PID 1 of its PID namespace, the first stage's child) is killed first: the
    kernel ends every process of the namespace before that init finishes exiting, and the
    first stage exits when its child has. The first process is then killed in any case."""
    if proc.poll() is not None:
        return
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(child), signal.SIGKILL)
    if children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    if proc.poll() is None:  # not reaped yet, so its pid and group id are still its own
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.kill()
    proc.wait()
