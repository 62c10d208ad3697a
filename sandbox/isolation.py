"""Launching the one-shot scorer in isolation, and classifying what happened.

Isolation (all of it, or the runner refuses with ``isolation_unavailable``):

- ``unshare --net``: a new network namespace — no interfaces up, not even loopback;
- ``setpriv``: an unprivileged uid/gid chosen per job, supplementary groups cleared, no new
  privileges, every capability dropped from the bounding set;
- rlimits: address space, CPU seconds, file size, open files, processes, no core dumps;
- an empty private working directory (mode 0700, owned by the job's uid) holding only the model,
  the feature matrix and a small metadata file;
- a new session/process group, killed as a whole at the wall-clock limit.

``allow_unisolated`` (development only; a production configuration refuses it) runs the same
scorer with rlimits and the wall-clock kill but without namespace or uid change.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCORER = Path(__file__).resolve().parent / "scorer_main.py"
UID_BASE = 100_000
UID_SPAN = 50_000
LOG_CAP = 600
# Shared scratch folders the scorer never needs: hidden so a model leaves nothing behind there.
SHARED_SCRATCH = (Path("/dev/shm"), Path("/var/tmp"))  # noqa: S108 - hidden, not used
_CLASSIFY = {0: "ok", 10: "invalid_model", 11: "invalid_model", 12: "resource_limit_exceeded",
             13: "invalid_model", 14: "internal_error"}
_probe_cache: dict[str, bool] = {}


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 60.0
    memory_mb: int = 2048
    cpu_seconds: int | None = None  # default: twice the wall time, at least 10


@dataclass(frozen=True)
class ScoreResult:
    """What the scorer produced. ``outcome`` is ``ok`` or a team-facing failure code."""

    outcome: str
    predictions: np.ndarray | None
    log: str  # scrubbed and length-capped: safe to show to the team
    seconds: float
    isolated: bool


def _tool(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/bin/{name}", f"/bin/{name}")
                                       if os.path.exists(p)), None)


def isolation_available() -> bool:
    """True when a probe process really starts in a new network namespace as an unprivileged
    uid. Cached per process."""
    if "ok" in _probe_cache:
        return _probe_cache["ok"]
    ok = False
    unshare, setpriv = _tool("unshare"), _tool("setpriv")
    if unshare and setpriv and os.geteuid() == 0:
        # Connecting to loopback must fail with "network unreachable": lo is down in a fresh
        # namespace (on the host the same connect is refused or succeeds).
        probe = ("import os,socket\n"
                 "s=socket.socket()\n"
                 "try:\n s.connect(('127.0.0.1',9)); print(os.getuid(),'connected')\n"
                 "except OSError as e: print(os.getuid(), e.errno)")
        try:
            with tempfile.TemporaryDirectory(prefix="portal-probe-") as hidden:
                done = subprocess.run(
                    [*_wrapper(unshare, setpriv, UID_BASE + UID_SPAN, (Path(hidden),)),
                     sys.executable, "-I", "-c", probe],
                    capture_output=True, text=True, timeout=30, check=False)
            parts = done.stdout.split()
            ok = done.returncode == 0 and parts == [str(UID_BASE + UID_SPAN),
                                                    str(errno.ENETUNREACH)]
        except (OSError, subprocess.SubprocessError):
            ok = False
    _probe_cache["ok"] = ok
    return ok


def uid_for_job(job_id: int) -> int:
    """A uid per job, so RLIMIT_NPROC counts only this job's processes."""
    return UID_BASE + (int(job_id) % UID_SPAN)


# Runs as root inside the new mount namespace: an empty, unreadable tmpfs over each folder to
# hide (the portal's home: store, releases, models, secrets), then exec the rest of argv.
_HIDE_SCRIPT = ('while [ "$1" != "--" ]; do '
                'mount -t tmpfs -o size=64k,mode=000,nosuid,nodev,noexec tmpfs "$1" || exit 97; '
                'shift; done; shift; exec "$@"')


def _wrapper(unshare: str, setpriv: str, uid: int, hide: tuple[Path, ...] = ()) -> list[str]:
    drop = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--bounding-set=-all", "--"]
    if not hide:
        return [unshare, "--net", "--", *drop]
    return [unshare, "--net", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
            _HIDE_SCRIPT, "sh", *[str(p) for p in hide], "--", *drop]


def _rlimits(limits: Limits, max_output_bytes: int):
    cpu = limits.cpu_seconds or max(10, int(limits.wall_seconds * 2))
    address_space = max(limits.memory_mb, 1024) * 1024 * 1024

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_output_bytes, max_output_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


_SCRUB = [
    (re.compile(r"\x1b\[[0-9;]*[A-Za-z]"), ""),
    (re.compile(r"^\S* ?\d{4}-\d\d-\d\d \d\d:\d\d:\S+ ", re.MULTILINE), ""),
    (re.compile(r"(/[\w.\-]+)+"), "<path>"),
    (re.compile(r"[-+]?\d*\.\d+(e[-+]?\d+)?", re.IGNORECASE), "<number>"),
    (re.compile(r"\b\d{4,}\b"), "<number>"),
    (re.compile(r"[^\x20-\x7e\n]"), ""),
]


def scrub_log(text: str, cap: int = LOG_CAP) -> str:
    """Make scorer output safe to show a team: no paths, no data-like numbers, printable ASCII,
    at most ``cap`` characters."""
    for pattern, replacement in _SCRUB:
        text = pattern.sub(replacement, text)
    text = "\n".join(line for line in text.splitlines() if line.strip())
    return text if len(text) <= cap else text[:cap] + " …[truncated]"


def _own(path: Path, uid: int, mode: int) -> None:
    os.chmod(path, mode)
    if os.geteuid() == 0:
        os.chown(path, uid, uid)


def _prepare_workdir(base: Path, uid: int, model_bytes: bytes) -> Path:
    """A fresh private folder for one job, holding the model only (inputs follow later)."""
    workdir = Path(tempfile.mkdtemp(prefix="job-", dir=base))
    (workdir / "model.onnx").write_bytes(model_bytes)
    _own(workdir / "model.onnx", uid, 0o400)
    (workdir / "stderr.txt").touch()
    _own(workdir / "stderr.txt", uid, 0o600)
    _own(workdir, uid, 0o700)
    return workdir


def _write_inputs(workdir: Path, uid: int, features: np.ndarray, input_name: str) -> None:
    meta = {"rows": int(features.shape[0]), "columns": int(features.shape[1]),
            "input_name": input_name}
    np.ascontiguousarray(features, dtype=np.float32).tofile(workdir / "features.f32")
    (workdir / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    for name in ("features.f32", "meta.json"):
        _own(workdir / name, uid, 0o400)


def _work_base() -> Path:
    """A root-owned parent folder the job uid can traverse but not list (0711)."""
    base = Path(tempfile.gettempdir()) / f"portal-sandbox-{os.geteuid()}"
    base.mkdir(mode=0o711, exist_ok=True)
    if base.is_symlink() or base.stat().st_uid != os.geteuid():
        raise RuntimeError("sandbox work folder is not ours")
    os.chmod(base, 0o711)  # noqa: S103 - traversable, not listable: job uids need a path in
    return base


def _classify(returncode: int, killed_for_time: bool, stderr: str) -> str:
    if killed_for_time:
        return "timed_out"
    if returncode in _CLASSIFY:
        return _CLASSIFY[returncode]
    if returncode < 0:  # a signal: SIGXCPU / SIGKILL from CPU limit, SIGSEGV from allocation
        return "resource_limit_exceeded"
    if "memory" in stderr.lower():
        return "resource_limit_exceeded"
    return "internal_error"


def _read_predictions(path: Path, rows: int) -> np.ndarray | None:
    """Read exactly ``rows`` float32 values, refusing anything of another size without
    reading it."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size != rows * 4:
            return None
        return np.fromfile(path, dtype=np.float32, count=rows).astype(np.float64)
    except OSError:
        return None


FeatureSource = np.ndarray | Callable[[], np.ndarray]


def run_scorer(model_bytes: bytes, features: FeatureSource, input_name: str, limits: Limits,
               job_id: int, allow_unisolated: bool = False,
               hide: tuple[Path, ...] = ()) -> ScoreResult:
    """Score ``features`` with the model in a fresh isolated process.

    ``features`` may be a function that builds the matrix: the scorer then starts (and loads
    the model) while the parent builds it, and receives it only when it is ready. The
    wall-clock limit starts when the inputs are handed over. ``hide`` names folders (the
    portal's home) that the scorer sees as empty and unreadable.

    Never raises for anything the model does: the outcome is ``ok`` or one of
    ``invalid_model``, ``timed_out``, ``resource_limit_exceeded``, ``internal_error``
    (predictions are validated by the caller). Raises ``IsolationUnavailable`` when isolation
    cannot be set up and ``allow_unisolated`` is false; re-raises what ``features`` raises."""
    isolated = isolation_available()
    if not isolated and not allow_unisolated:
        raise IsolationUnavailable()
    uid = uid_for_job(job_id)
    workdir = _prepare_workdir(_work_base(), uid, model_bytes)
    try:
        command = _command(isolated, uid, hide)
        return _run_in(workdir, uid, command, isolated, features, input_name, limits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _needed_by_scorer() -> tuple[Path, ...]:
    """What the scorer process must still reach: the interpreter, its packages, the scorer."""
    import onnxruntime

    return tuple(Path(p).resolve() for p in (
        sys.executable, os.path.realpath(sys.executable), sys.prefix, sys.base_prefix,
        SCORER, Path(onnxruntime.__file__).parent, Path(np.__file__).parent, _work_base()))


def hideable(paths: tuple[Path, ...]) -> tuple[Path, ...]:
    """The folders of ``paths`` that can be hidden from the scorer: existing ones that do not
    hold anything the scorer needs (a checkout under /tmp or /var/tmp must stay reachable)."""
    needed = _needed_by_scorer()
    return tuple(p for p in paths if p.is_dir()
                 and not any(n == p.resolve() or n.is_relative_to(p.resolve()) for n in needed))


def _command(isolated: bool, uid: int, hide: tuple[Path, ...]) -> list[str]:
    command = [sys.executable, "-I", str(SCORER)]
    if isolated:
        command = [*_wrapper(_tool("unshare") or "unshare", _tool("setpriv") or "setpriv", uid,
                             hideable(hide)), *command]
    return command


def _run_in(workdir: Path, uid: int, command: list[str], isolated: bool,
            features: FeatureSource, input_name: str, limits: Limits) -> ScoreResult:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "OMP_NUM_THREADS": "1",
           "LANG": "C.UTF-8"}
    # The file-size cap must be set before the row count is known: 512 MB (128M predictions);
    # the predictions file is then checked for its exact size.
    with open(workdir / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(command, cwd=workdir, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True, close_fds=True,
                                preexec_fn=_rlimits(limits, 512 * 1024 * 1024))
    killed = threading.Event()
    try:
        matrix = features() if callable(features) else features
        _write_inputs(workdir, uid, matrix, input_name)
        started = time.monotonic()
        timer = threading.Timer(limits.wall_seconds, lambda: (killed.set(), _signal_group(proc)))
        timer.start()
        with contextlib.suppress(BrokenPipeError, OSError):
            proc.stdin.write(b"go\n")
            proc.stdin.close()
        proc.wait()
        timer.cancel()
    finally:
        _kill_group(proc)
    stderr = _read_capped(workdir / "stderr.txt", 8192)
    rows = int(matrix.shape[0])
    outcome = _classify(proc.returncode, killed.is_set(), stderr)
    predictions = None
    if outcome == "ok":
        predictions = _read_predictions(workdir / "predictions.f32", rows)
        if predictions is None:
            outcome, stderr = "invalid_model", "the model did not give one probability per row"
    return ScoreResult(outcome, predictions, scrub_log(stderr), time.monotonic() - started,
                       isolated)


def _signal_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the scorer's whole process group (it may have started threads or children)."""
    _signal_group(proc)
    with contextlib.suppress(OSError):
        if proc.stdin and not proc.stdin.closed:
            proc.stdin.close()
    proc.wait()


def _read_capped(path: Path, cap: int) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(cap).decode("utf-8", "replace")
    except OSError:
        return ""


class IsolationUnavailable(Exception):
    """Isolation could not be set up; the runner refuses to run the model."""
