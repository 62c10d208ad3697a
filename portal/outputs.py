"""Files the portal writes where a person asks (exports, checkpoints): never onto its own state.

An output path must name a file in an existing folder, outside ``PORTAL_HOME`` and every other
folder of the portal's own state (secrets, audit anchors, dataset cards, access policies, task
cards). The file is written beside its target under a temporary name (mode 0600) and renamed
over it, so a failed export leaves nothing half-written, and a symbolic link at the target is
replaced, never written through. Refusals are user errors that name no path.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from portal.config import Settings
from portal.errors import InvalidInput


def protected_folders(settings: Settings) -> list[Path]:
    """The folders holding the portal's own state (resolved)."""
    folders = [settings.home, settings.secrets_dir, settings.audit_anchor_dir,
               settings.datasets_dir, settings.policies_dir, settings.tasks_dir]
    return [Path(os.path.realpath(f)) for f in folders if f is not None]


def _inside(path: Path, folders: list[Path]) -> bool:
    return any(path == f or path.is_relative_to(f) for f in folders)


def check_output(settings: Settings, out: Path | str) -> Path:
    """The path to write for ``out``. Raises InvalidInput: ``output_folder_missing``,
    ``output_is_directory``, ``output_not_a_file`` (a device, socket...), ``output_read_only``,
    ``output_inside_portal``."""
    given = Path(os.path.expanduser(str(out)))
    if given.name in ("", ".", "..") or str(out).endswith(os.sep):
        raise InvalidInput("output_is_directory", "The output names a folder; give a file name.")
    parent = Path(os.path.realpath(given.parent))
    if not parent.is_dir():
        raise InvalidInput("output_folder_missing", "The output's folder does not exist.")
    target = parent / given.name
    folders = protected_folders(settings)
    if _inside(target, folders) or _inside(Path(os.path.realpath(target)), folders):
        raise InvalidInput("output_inside_portal",
                           "The output is inside the portal's own state (PORTAL_HOME or one of "
                           "its governed folders); write exports elsewhere.")
    try:
        found = os.lstat(target)
    except FileNotFoundError:
        return target
    if stat.S_ISDIR(found.st_mode) or (stat.S_ISLNK(found.st_mode) and target.is_dir()):
        raise InvalidInput("output_is_directory", "The output names a folder; give a file name.")
    if not (stat.S_ISREG(found.st_mode) or stat.S_ISLNK(found.st_mode)):
        raise InvalidInput("output_not_a_file", "The output exists and is not a regular file.")
    if stat.S_ISREG(found.st_mode) and not found.st_mode & 0o222:
        raise InvalidInput("output_read_only", "The output file exists and is read-only.")
    return target


@contextmanager
def atomic_output(settings: Settings, out: Path | str) -> Iterator[Path]:
    """Check ``out`` (:func:`check_output`), yield a temporary path beside it to write, then
    rename it over the target. Raises InvalidInput (as check_output, or
    ``output_not_writable``)."""
    target = check_output(settings, out)
    tmp = target.parent / f".{target.name[:100]}.{secrets.token_hex(6)}.tmp"
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        raise InvalidInput("output_not_writable",
                           "The output's folder cannot be written to.") from None
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(settings: Settings, out: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``out`` as :func:`atomic_output` does; returns the path written."""
    with atomic_output(settings, out) as tmp:
        tmp.write_bytes(data)
    return check_output(settings, out)
