"""Releases: immutable, versioned, de-identified copies of a dataset, as the rest of the portal
sees them.

A release directory ``$PORTAL_HOME/releases/<dataset>/<version>/`` holds:

- ``dev.duckdb``     the dev partition (what governed extracts are built from);
- ``holdout.duckdb`` the held-out partition (validation only; never enters an extract);
- ``card.json``      tables, columns, classifications, person columns and row counts;
- ``report.json``    the de-identification report.

Only trusted platform code (release builder, extract builder, validation) opens the DuckDB files.

Versions are whole numbers per dataset (``"1"``, ``"2"``, ...), written by
:mod:`portal.catalog.builder`. Besides ``tables``, the builder's card.json carries title,
description, standard, terms, provenance (with the source version used), split (person table
and key, held-out fraction, rule), privacy settings, excluded tables, persons (total, dev,
holdout, suppressed) and demographics (age band × sex, cells under 11 suppressed); each table
lists its released columns (with ``transform``) and its dropped columns.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portal import audit, jobs
from portal.config import Settings
from portal.errors import NotFound
from portal.store.db import transaction, utcnow


@dataclass(frozen=True)
class ReleaseColumn:
    name: str
    type: str
    classification: str
    description: str = ""
    dp_bounds: tuple[float, float] | None = None  # public clipping bounds (DP tiers)
    dp_keys: tuple[Any, ...] | None = None  # public key set (DP tiers)


@dataclass(frozen=True)
class ReleaseTable:
    name: str
    columns: tuple[ReleaseColumn, ...]
    person_column: str | None  # the column linking rows to a person, if any
    dev_rows: int
    holdout_rows: int

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


@dataclass(frozen=True)
class Release:
    dataset_id: str
    version: str
    directory: Path
    built_at: str
    tables: dict[str, ReleaseTable]
    card: dict[str, Any]

    @property
    def dev_path(self) -> Path:
        return self.directory / "dev.duckdb"

    @property
    def holdout_path(self) -> Path:
        return self.directory / "holdout.duckdb"

    @property
    def report_path(self) -> Path:
        return self.directory / "report.json"

    def report(self) -> dict[str, Any]:
        return json.loads(self.report_path.read_text(encoding="utf-8"))


def read_card(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "card.json").read_text(encoding="utf-8"))


def release_from_directory(dataset_id: str, version: str, directory: Path,
                           built_at: str) -> Release:
    """The release in ``directory``. Release folders are written once, so the answer is cached
    per card file (its inode and modification time are part of the key)."""
    try:
        info = (directory / "card.json").stat()
    except OSError:
        info = None
    if info is None:
        return _release(dataset_id, version, directory, built_at, None)
    return _release(dataset_id, version, directory, built_at, (info.st_ino, info.st_mtime_ns))


@functools.lru_cache(maxsize=256)
def _release(dataset_id: str, version: str, directory: Path, built_at: str,
             _stamp: tuple[int, int] | None) -> Release:
    card = read_card(directory)
    tables = {}
    for name, spec in card["tables"].items():
        tables[name] = ReleaseTable(
            name=name,
            columns=tuple(ReleaseColumn(
                c["name"], c["type"], c["classification"], c.get("description", ""),
                tuple(c["dp_bounds"]) if c.get("dp_bounds") else None,
                tuple(c["dp_keys"]) if c.get("dp_keys") else None) for c in spec["columns"]),
            person_column=spec.get("person_column"),
            dev_rows=int(spec.get("dev_rows", 0)),
            holdout_rows=int(spec.get("holdout_rows", 0)),
        )
    return Release(dataset_id, version, directory, built_at, tables, card)


def current_release(conn: sqlite3.Connection, settings: Settings, dataset_id: str) -> Release:
    """The current release of a dataset. Raises NotFound(code='release_not_found')."""
    row = conn.execute(
        "SELECT version, directory, built_at FROM releases"
        " WHERE dataset_id = ? AND status = 'current'",
        (dataset_id,),
    ).fetchone()
    if row is None:
        raise NotFound("release_not_found", f"Dataset {dataset_id!r} has no release yet.")
    directory = settings.releases_dir / row["directory"]
    return release_from_directory(dataset_id, row["version"], directory, row["built_at"])


def list_releases(conn: sqlite3.Connection, dataset_id: str) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM releases WHERE dataset_id = ? ORDER BY id DESC", (dataset_id,)
    ).fetchall()


def register_release(conn: sqlite3.Connection, *, dataset_id: str, title: str, version: str,
                     relative_directory: str, manifest_hash: str, built_by: str,
                     summary: dict[str, Any]) -> None:
    """Make a fully written release directory the current one, atomically, with its audit event.

    The directory must already be complete (files written and renamed into place): registering is
    the single step that makes a release visible."""
    now = utcnow()
    with transaction(conn):
        conn.execute(
            "INSERT INTO datasets (id, title, manifest_hash, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET title = excluded.title,"
            " manifest_hash = excluded.manifest_hash, updated_at = excluded.updated_at",
            (dataset_id, title, manifest_hash, now),
        )
        conn.execute("UPDATE releases SET status = 'superseded'"
                     " WHERE dataset_id = ? AND status = 'current'", (dataset_id,))
        conn.execute(
            "INSERT INTO releases (dataset_id, version, directory, status, built_at, built_by,"
            " manifest_hash, summary) VALUES (?, ?, ?, 'current', ?, ?, ?, ?)",
            (dataset_id, version, relative_directory, now, built_by, manifest_hash,
             json.dumps(summary, sort_keys=True)),
        )
        audit.record(conn, actor=built_by, action="release.build", target=f"dataset:{dataset_id}",
                     decision="done", details={"version": version, **summary})
        # Extracts of the new release for the tiers in use, built by a worker ahead of the
        # first query (each server would otherwise build them on demand).
        jobs.defer(conn, "extracts.build", key=f"extracts:{dataset_id}", dataset_id=dataset_id)
