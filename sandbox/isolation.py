"""Launching the one-shot scorer in isolation, and classifying what happened.

The scorer runs in a jail built by :mod:`portal.isolation` (the same launcher as the SQL
workers): new user, PID, IPC, network, UTS, cgroup and mount namespaces; a read-only view of
only the interpreter, onnxruntime and numpy (with what they require) and the scorer program;
its own job folder (mode 0700, owned by the job's uid) as the only writable place, holding the
model, the feature matrix and a small metadata file; a per-job unprivileged uid with no
capabilities; a seccomp filter; rlimits (address space, CPU seconds, file size, open files,
processes, no core dumps) set by ``prlimit`` in the child; killed as a whole at the wall-clock
limit. Without all of it the runner refuses with ``isolation_unavailable``.

``allow_unisolated`` (development only; a production configuration refuses it) runs the same
scorer with the rlimits and the wall-clock kill but without the jail.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from portal import isolation as jail
from portal.isolation import IsolationUnavailable, jobs
from portal.isolation.launcher import limits_command

SCORER = Path(__file__).resolve().parent / "scorer_main.py"
SCORER_IN_JAIL = "/opt/portal/scorer_main.py"
SCORER_PACKAGES = ("onnxruntime", "numpy")
UID_BASE = 100_000
UID_SPAN = 50_000
LOG_CAP = 600
OUTPUT_CAP_BYTES = 512 * 1024 * 1024  # predictions file (128M rows); its exact size is checked
_CLASSIFY = {0: "ok", 10: "invalid_model", 11: "invalid_model", 12: "resource_limit_exceeded",
             13: "invalid_model", 14: "internal_error"}
__all__ = ["IsolationUnavailable", "Limits", "ScoreResult", "isolation_available",
           "run_scorer", "scrub_log", "uid_for_job", "unavailable_reason"]


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


def isolation_available() -> bool:
    """True when the real launcher, probed once per process, gives a job every part of the
    jail (see :mod:`portal.isolation.probe`)."""
    return jail.available()


def unavailable_reason(hide: tuple[Path, ...] = ()) -> str | None:
    """Why the scorer cannot be jailed here with ``hide`` kept invisible (None: it can)."""
    try:
        jail.check()
        jail.verify(_jail(uid_for_job(0), Limits(), hide, None))
    except IsolationUnavailable as exc:
        return exc.reason
    return None


def uid_for_job(job_id: int) -> int:
    """A uid per job, so RLIMIT_NPROC counts only this job's processes."""
    return UID_BASE + (int(job_id) % UID_SPAN)


def _rlimits(limits: Limits) -> jail.Rlimits:
    cpu = limits.cpu_seconds or max(10, int(limits.wall_seconds * 2))
    return jail.Rlimits(file_size_bytes=OUTPUT_CAP_BYTES,
                        address_space_mb=max(limits.memory_mb, 1024), cpu_seconds=cpu)


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


def _prepare_workdir(uid: int, model_bytes: bytes) -> Path:
    """A fresh private folder for one job, holding the model only (inputs follow later)."""
    workdir = jobs.new_job_folder(uid)
    (workdir / "model.onnx").write_bytes(model_bytes)
    _own(workdir / "model.onnx", uid, 0o400)
    (workdir / "stderr.txt").touch()
    _own(workdir / "stderr.txt", uid, 0o600)
    return workdir


def _write_inputs(workdir: Path, uid: int, features: np.ndarray, input_name: str) -> None:
    meta = {"rows": int(features.shape[0]), "columns": int(features.shape[1]),
            "input_name": input_name}
    np.ascontiguousarray(features, dtype=np.float32).tofile(workdir / "features.f32")
    (workdir / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    for name in ("features.f32", "meta.json"):
        _own(workdir / name, uid, 0o400)


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
    """Score ``features`` with the model in a fresh jailed process.

    ``features`` may be a function that builds the matrix: the scorer then starts (and loads
    the model) while the parent builds it, and receives it only when it is ready. The
    wall-clock limit starts when the inputs are handed over. ``hide`` names folders (the
    portal's home) that must stay invisible to the scorer: if anything the scorer needs lies
    in or above one of them, isolation is unavailable.

    Never raises for anything the model does: the outcome is ``ok`` or one of
    ``invalid_model``, ``timed_out``, ``resource_limit_exceeded``, ``internal_error``
    (predictions are validated by the caller). Raises ``IsolationUnavailable`` when the jail
    cannot be set up and ``allow_unisolated`` is false; re-raises what ``features`` raises."""
    uid = uid_for_job(job_id)
    reason = unavailable_reason(hide)
    if reason is not None and not allow_unisolated:
        raise IsolationUnavailable(reason)
    isolated = reason is None
    workdir = _prepare_workdir(uid, model_bytes)
    try:
        if isolated:
            start = jail.launch(_jail(uid, limits, hide, workdir),
                                [jail.python(), "-I", SCORER_IN_JAIL])
        else:
            start = jail.Launch([*_unjailed_limits(limits), sys.executable, "-I", str(SCORER)],
                                ())
        return _run_in(workdir, uid, start, isolated, features, input_name, limits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _jail(uid: int, limits: Limits, hide: tuple[Path, ...], workdir: Path | None) -> jail.Jail:
    return jail.Jail(uid=uid, gid=uid, packages=SCORER_PACKAGES, rlimits=_rlimits(limits),
                     files=(jail.Bind(SCORER, SCORER_IN_JAIL),), workdir=workdir,
                     hidden=tuple(hide), env={"HOME": jail.WORKDIR, "OMP_NUM_THREADS": "1"})


def _unjailed_limits(limits: Limits) -> list[str]:
    """Development only: the same rlimits through ``prlimit`` when it is installed."""
    try:
        return limits_command(_rlimits(limits))
    except IsolationUnavailable:
        return []


def _run_in(workdir: Path, uid: int, start: jail.Launch, isolated: bool,
            features: FeatureSource, input_name: str, limits: Limits) -> ScoreResult:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "OMP_NUM_THREADS": "1",
           "LANG": "C.UTF-8"}
    with open(workdir / "stderr.txt", "wb") as err:
        proc = jail.spawn(start, cwd=workdir, env=env, stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                          close_fds=True)
    killed = threading.Event()
    started = time.monotonic()
    try:
        matrix = features() if callable(features) else features
        _write_inputs(workdir, uid, matrix, input_name)
        started = time.monotonic()
        timer = threading.Timer(limits.wall_seconds, lambda: (killed.set(), jail.stop(proc)))
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


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the scorer and every process of its jail; return once none is left."""
    jail.stop(proc)
    with contextlib.suppress(OSError):
        if proc.stdin and not proc.stdin.closed:
            proc.stdin.close()


def _read_capped(path: Path, cap: int) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(cap).decode("utf-8", "replace")
    except OSError:
        return ""
