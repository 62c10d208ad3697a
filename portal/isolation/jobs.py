"""Job folders: one private folder per jailed job, under one root-only parent, and a sweep of
those whose process is gone (a worker that was killed leaves its folder behind)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

_JOB = re.compile(r"^job-(\d+)-[0-9a-f]+$")


def job_base() -> Path:
    """``<tmp>/portal-sandbox-<euid>``, mode 0700 and ours (a jail binds a job folder into
    place, so job uids never need a path through it). Raises RuntimeError if it is not ours."""
    base = Path(tempfile.gettempdir()) / f"portal-sandbox-{os.geteuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    if base.is_symlink() or base.stat().st_uid != os.geteuid():
        raise RuntimeError("the sandbox job folder is not ours")
    os.chmod(base, 0o700)
    return base


def new_job_folder(uid: int) -> Path:
    """A fresh folder for one job, mode 0700, owned by the job's ``uid`` when we are root.
    Its name carries our process id, so a sweep can tell whether its owner is still alive."""
    folder = job_base() / f"job-{os.getpid()}-{secrets.token_hex(6)}"
    folder.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(folder, uid, uid)
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_job_folders(base: Path | None = None) -> int:
    """Remove job folders whose creating process no longer runs (and any entry that is not
    a job folder); returns how many were removed. Called when a worker starts."""
    base = base or job_base()
    removed = 0
    for entry in base.iterdir():
        match = _JOB.match(entry.name)
        if match and _alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed
