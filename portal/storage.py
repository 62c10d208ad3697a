"""Shared storage for the immutable files: releases, extracts, models and reports.

Everything lives under one storage root (``PORTAL_STORAGE_ROOT``, by default PORTAL_HOME) that
several machines can share as a POSIX path. Files are written once and never changed:

- models and extracts are content-addressed (the SHA-256 of the model; the hash of the
  release version and resolved tier spec of an extract);
- releases live under their dataset and version, which are never reused;
- reports are named by run and the SHA-256 of their content, so a worker that lost its lease
  writes a file of its own instead of replacing the one the store points to.

Writers use :func:`write_once`: a temporary name unique to the write (process id and a random
part), then an atomic rename. :class:`Storage` is the interface the rest of the code can move to
when an S3-compatible store is added: keys are relative paths, and readers that need a local file
(DuckDB, the scorer) ask for :meth:`Storage.local_path`, which an object store would satisfy
from a local cache.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Protocol


class Storage(Protocol):
    def local_path(self, key: str) -> Path: ...

    def exists(self, key: str) -> bool: ...

    def put(self, key: str, data: bytes) -> Path: ...


def unique_temp(target: Path) -> Path:
    """A temporary name beside ``target``, unique to this write (not just to the process)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")


def write_once(target: Path, data: bytes, mode: int = 0o600) -> Path:
    """Write ``data`` to ``target`` atomically (temporary name, fsync, rename). A file already
    there with the same content is kept; raises FileExistsError if it holds other bytes."""
    if target.exists():
        if hashlib.sha256(target.read_bytes()).digest() != hashlib.sha256(data).digest():
            raise FileExistsError(f"immutable file {target.name} already holds other content")
        return target
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = unique_temp(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


class LocalStorage:
    """Storage under a (possibly shared) POSIX folder."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError("storage keys are relative paths inside the storage root")
        return path

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def put(self, key: str, data: bytes) -> Path:
        return write_once(self._path(key), data)
