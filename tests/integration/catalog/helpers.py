"""Helpers for catalog integration tests: open release files and the template's raw sources."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from portal.catalog import transforms as tx
from portal.catalog.releases import Release, current_release
from portal.config import Settings
from portal.services.context import Context

DATASETS = ("eunomia", "wdbc", "omop_synth")
UUID_RE = r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def template_settings(home: Path) -> Settings:
    return Settings.from_env({"PORTAL_HOME": str(home), "PORTAL_ENV": "development"})


def template_release(home: Path, dataset_id: str) -> Release:
    ctx = Context.open(template_settings(home))
    try:
        return current_release(ctx.conn, ctx.settings, dataset_id)
    finally:
        ctx.close()


def open_release(release: Release) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with the release's partitions attached read-only as dev and
    holdout."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{release.dev_path}' AS dev (READ_ONLY)")
    con.execute(f"ATTACH '{release.holdout_path}' AS holdout (READ_ONLY)")
    return con


def raw_file(home: Path, dataset_id: str) -> Path:
    [path] = sorted((home / "raw" / dataset_id).glob("*.duckdb"))
    return path


def python_hash(settings: Settings, dataset_id: str, value: object) -> str:
    key = tx.dataset_key(settings.secret("pseudonym_salt"), dataset_id)
    return hashlib.sha256((key + str(value)).encode()).hexdigest()


def python_pseudonym(settings: Settings, dataset_id: str, value: object) -> int:
    return int(python_hash(settings, dataset_id, value)[:15], 16)
