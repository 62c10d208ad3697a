"""The release builder: raw source → de-identified, versioned, read-only release.

Steps (one dataset): strict manifest → file lock for the dataset → raw source (read-only) →
source/manifest check → person map (pseudonym, hold-out flag, date shift) → k-anonymity
treatment → dev and held-out DuckDB files in a staging folder → report checks on those files →
card.json, report.json, report.md → fsync → rename into place → ``register_release`` (the only
step that makes a release visible). Any failure removes the staging folder, records a ``failed``
audit event and leaves the previous release current.

Versions are whole numbers per dataset: ``1``, ``2``, ... (one more than any version the store
or the releases folder has seen). The release folder is ``releases/<dataset>/<version>/``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from portal import audit
from portal.catalog import deid
from portal.catalog import report as rpt
from portal.catalog import transforms as tx
from portal.catalog.manifest import LoadedManifest, check_against_source, load_manifest
from portal.catalog.releases import register_release
from portal.catalog.sources import SourceFile, attach_source, open_source, source_tables
from portal.config import Settings
from portal.errors import ConfigError, InvalidInput, NotFound, PortalError, UserError

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
LOCK_TIMEOUT_S = 900.0
MIN_PERSONS, MAX_PERSONS = 100, 5_000_000  # --persons bounds for the synthetic dataset


@dataclass(frozen=True)
class BuildResult:
    dataset_id: str
    version: str
    directory: Path
    rows: int
    seconds: float
    report: dict[str, Any]


def manifest_path(settings: Settings, dataset_id: str) -> Path:
    folder = settings.datasets_dir or settings.project_root / "datasets"
    path = folder / f"{dataset_id}.yaml"
    if not dataset_id.replace("_", "").isalnum() or not path.is_file():
        raise NotFound("dataset_not_found", f"There is no dataset card for {dataset_id!r}.")
    return path


@contextmanager
def dataset_lock(settings: Settings, dataset_id: str, timeout: float = LOCK_TIMEOUT_S,
                 progress: Progress | None = None) -> Iterator[None]:
    """One build per dataset at a time (fcntl.flock on releases/<dataset>/.lock). A second build
    waits; after ``timeout`` seconds it refuses with ``build_in_progress``."""
    folder = settings.releases_dir / dataset_id
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise UserError("build_in_progress", f"Another build of {dataset_id} is "
                                    "running; try again when it has finished.") from None
                if progress and not told:
                    progress(f"{dataset_id}: waiting for another build to finish")
                    told = True
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def next_version(conn: sqlite3.Connection, settings: Settings, dataset_id: str) -> str:
    seen = [int(r[0]) for r in conn.execute(
        "SELECT version FROM releases WHERE dataset_id = ?", (dataset_id,)) if str(r[0]).isdigit()]
    folder = settings.releases_dir / dataset_id
    if folder.is_dir():
        seen += [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
    return str(max(seen, default=0) + 1)


def build_release(settings: Settings, conn: sqlite3.Connection, dataset_id: str, *,
                  actor: str, persons: int | None = None, progress: Progress | None = None,
                  lock_timeout: float = LOCK_TIMEOUT_S) -> BuildResult:
    """Build and publish one release. Raises ConfigError (invalid_manifest,
    manifest_source_mismatch, k_target_missed, release_checks_failed), NotFound, UserError
    (build_in_progress), InvalidInput (invalid_persons). On failure nothing is published, a
    ``failed`` audit event is recorded and the previous release stays current."""
    say = progress or (lambda _msg: None)
    try:
        if persons is not None and not MIN_PERSONS <= persons <= MAX_PERSONS:
            raise InvalidInput("invalid_persons", f"The number of persons must be between "
                               f"{MIN_PERSONS:,} and {MAX_PERSONS:,}.")
        loaded = load_manifest(manifest_path(settings, dataset_id))
        with dataset_lock(settings, dataset_id, lock_timeout, say):
            return _build_locked(settings, conn, loaded, actor, persons, say)
    except BaseException as exc:
        code = exc.code if isinstance(exc, PortalError) else "internal_error"
        problems = exc.problems[:20] if isinstance(exc, ConfigError) else []
        try:
            audit.record(conn, actor=actor, action="release.build", target=f"dataset:{dataset_id}",
                         decision="failed", reason=code, details={"problems": problems})
        except Exception:  # the failure itself is what matters to the caller
            log.exception("could not record the failed build")
        raise


def check_source(settings: Settings, loaded: LoadedManifest) -> None:
    """Compare a manifest with its (materialised, read-only) source without building.
    Raises ConfigError(manifest_source_mismatch). Takes the dataset's build lock, because it
    may materialise the raw source."""
    with dataset_lock(settings, loaded.manifest.id):
        source = open_source(settings, loaded.manifest)
        con = duckdb.connect()
        try:
            attach_source(con, source)
            found = source_tables(con)
        finally:
            con.close()
    check_against_source(loaded, {t: {c: col.type for c, col in cols.items()}
                                  for t, cols in found.items()})


def _clean_stale(folder: Path) -> None:
    for stale in folder.glob(".staging-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _build_locked(settings: Settings, conn: sqlite3.Connection, loaded: LoadedManifest,
                  actor: str, persons: int | None, say: Progress) -> BuildResult:
    m = loaded.manifest
    started = time.monotonic()
    folder = settings.releases_dir / m.id
    _clean_stale(folder)  # left by an interrupted build; we hold the lock, so none is running
    for partial in (settings.home / "raw" / m.id).glob(".*.tmp"):
        partial.unlink(missing_ok=True)
    say(f"{m.id}: reading the source")
    source = open_source(settings, m, persons, progress=say)
    version = next_version(conn, settings, m.id)
    staging = folder / f".staging-{version}-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    staging.mkdir(mode=0o700)
    try:
        report = _write_partitions(settings, loaded, source, staging, version, say)
        rows = sum(t["dev_rows"] + t["holdout_rows"] for t in report["tables"].values())
        _publish(staging, folder / version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    register_release(conn, dataset_id=m.id, title=m.title, version=version,
                     relative_directory=f"{m.id}/{version}", manifest_hash=loaded.digest,
                     built_by=actor, summary={"rows": rows, "persons": report["persons"],
                                              "source_version": source.package_version})
    seconds = time.monotonic() - started
    say(f"{m.id}: release {version} published ({rows:,} rows in {seconds:.1f}s)")
    return BuildResult(m.id, version, folder / version, rows, seconds, report)


def _connect(settings: Settings, staging: Path) -> duckdb.DuckDBPyConnection:
    scratch = staging / ".scratch"
    scratch.mkdir()
    return duckdb.connect(config={
        "threads": max(1, os.cpu_count() or 1), "temp_directory": str(scratch),
        "memory_limit": "4GB",  # spills to the staging scratch folder beyond this
        "autoinstall_known_extensions": False, "autoload_known_extensions": False,
        "preserve_insertion_order": False,
    })


def _write_partitions(settings: Settings, loaded: LoadedManifest, source: SourceFile,
                      staging: Path, version: str, say: Progress) -> dict[str, Any]:
    m = loaded.manifest
    con = _connect(settings, staging)
    try:
        attach_source(con, source)
        found = source_tables(con)
        check_against_source(loaded, {t: {c: col.type for c, col in cols.items()}
                                      for t, cols in found.items()})
        tx.set_key(con, tx.dataset_key(settings.secret("pseudonym_salt"), m.id))
        plan = deid.Plan(manifest=m, source=found)
        ptable_sql = f'src."{m.split.person_table}"'
        say(f"{m.id}: pseudonymising persons and splitting dev / held-out")
        deid.build_person_map(con, plan, ptable_sql)
        deid.apply_k_anonymity(con, plan, ptable_sql)
        deid.build_key_maps(con, plan)
        for part in ("dev", "holdout"):
            con.execute(f"ATTACH '{staging / (part + '.duckdb')}' AS {part}")
        counts: dict[str, Any] = {}
        for i, tname in enumerate(m.tables, 1):
            say(f"{m.id}: table {tname} ({i}/{len(m.tables)})")
            src_sql = f'src."{tname}"'
            counts[tname] = deid.transform_counts(con, plan, tname, src_sql)
            person_level = m.tables[tname].person_column is not None
            for part in ("dev", "holdout"):
                holdout = (part == "holdout") if person_level else None
                con.execute(f'CREATE TABLE {part}."{tname}" AS '
                            f"{deid.table_select(plan, src_sql, tname, holdout)}")
        say(f"{m.id}: checking the release")
        report = _assemble_report(con, plan, counts, version)
        card = _card(loaded, report, source, version)
        card["demographics"] = rpt.demographics(con, plan)
        con.execute("DETACH dev")
        con.execute("DETACH holdout")
    finally:
        con.close()
    if report["failures"]:
        code = "k_target_missed" if any("k-anonymity" in f for f in report["failures"]) \
            else "release_checks_failed"
        raise ConfigError(problems=[f"{m.id}: {f}" for f in report["failures"]], code=code)
    shutil.rmtree(staging / ".scratch", ignore_errors=True)
    _write_json(staging / "card.json", card)
    _write_json(staging / "report.json", report)
    (staging / "report.md").write_text("\n".join(rpt.summary_lines(report)) + "\n",
                                       encoding="utf-8")
    return report


def _assemble_report(con: duckdb.DuckDBPyConnection, plan: deid.Plan,
                     counts: dict[str, Any], version: str) -> dict[str, Any]:
    m = plan.manifest
    failures = rpt.structural_checks(con, plan)
    findings, scan_failures = rpt.residual_scan(con, plan)
    failures += scan_failures
    tables: dict[str, Any] = {}
    dropped, transformed = [], []
    for tname, spec in m.tables.items():
        dev = con.execute(f'SELECT count(*) FROM dev."{tname}"').fetchone()[0]
        hold = con.execute(f'SELECT count(*) FROM holdout."{tname}"').fetchone()[0]
        src_rows = counts[tname]["source_rows"]
        tables[tname] = {"source_rows": src_rows, "dev_rows": dev, "holdout_rows": hold}
        if spec.person_column is not None:
            unknown = counts[tname]["rows_of_unknown_persons"]
            tables[tname]["rows_of_unknown_persons"] = unknown
            tables[tname]["rows_of_suppressed_persons"] = src_rows - dev - hold - unknown
        for cname, col in spec.columns.items():
            c = counts[tname]["columns"][cname]
            entry = {"table": tname, "column": cname, "classification": col.classification}
            if col.transform == "drop":
                dropped.append({**entry, "values_removed": c["non_null"]})
            elif col.transform != "keep" or "cast_failed_to_null" in c:
                extra = {k: v for k, v in c.items() if k != "transform"}
                transformed.append({**entry, "transform": col.transform, "counts": extra})
    kanon = dict(plan.kanon)
    if kanon.get("applicable"):
        kanon["release"] = rpt.kanon_on_release(con, plan)
        if kanon["release"]["records_below_k"]:
            failures.append("k-anonymity target missed after treatment")
        if kanon["suppressed_fraction"] > kanon["max_suppressed_fraction"]:
            failures.append(f"k-anonymity target missed: reaching k would suppress "
                            f"{kanon['suppressed_fraction']:.1%} of persons, more than the card "
                            f"allows ({kanon['max_suppressed_fraction']:.1%})")
    pt, key = m.split.person_table, m.split.person_key
    dev_p = con.execute(f'SELECT count(DISTINCT "{key}") FROM dev."{pt}"').fetchone()[0]
    hold_p = con.execute(f'SELECT count(DISTINCT "{key}") FROM holdout."{pt}"').fetchone()[0]
    return {
        "dataset": m.id, "version": version, "passed": not failures, "failures": failures,
        "persons": {"total": plan.persons_total, "dev": dev_p, "holdout": hold_p,
                    "suppressed": plan.persons_suppressed},
        "tables": tables, "dropped": dropped, "transformed": transformed,
        "generalised": [{"table": pt, "column": c, "band_width": w}
                        for c, w in plan.generalised.items()],
        "k_anonymity": kanon, "residual_scan": findings,
        "scan_patterns": list(rpt.SCAN_PATTERNS),
        "age_reference_date": m.privacy.age_reference_date,
    }


SPLIT_RULE = ("A person is held out when the 52 bits after the pseudonym in SHA-256(dataset key "
              "‖ person key) — read as a fraction of 2^52 — fall below the held-out fraction. "
              "The dataset key is derived from a secret installation salt, so the split is "
              "deterministic for the platform and unpredictable for users.")


def _card(loaded: LoadedManifest, report: dict[str, Any], source: SourceFile,
          version: str) -> dict[str, Any]:
    m = loaded.manifest
    tables = {}
    for tname, spec in m.tables.items():
        tables[tname] = {
            "description": spec.description, "person_column": spec.person_column,
            "dev_rows": report["tables"][tname]["dev_rows"],
            "holdout_rows": report["tables"][tname]["holdout_rows"],
            "columns": [{"name": n, "type": c.type, "classification": c.classification,
                         "description": c.description, "transform": c.transform,
                         **({"dp_bounds": c.dp_bounds} if c.dp_bounds else {}),
                         **({"dp_keys": c.dp_keys} if c.dp_keys else {})}
                        for n, c in deid.released_columns(spec)],
            "dropped_columns": [{"name": n, "classification": c.classification,
                                 "description": c.description}
                                for n, c in spec.columns.items() if c.transform == "drop"],
        }
    return {
        "dataset": m.id, "version": version, "title": m.title, "description": m.description,
        "standard": m.standard, "terms": m.terms,
        "provenance": {**m.provenance.model_dump(), "source_version": source.package_version},
        "manifest_sha256": loaded.digest,
        "split": {"person_table": m.split.person_table, "person_key": m.split.person_key,
                  "holdout_fraction": m.split.holdout_fraction, "rule": m.split.rule,
                  "rule_text": SPLIT_RULE},
        "privacy": {"k_target": m.privacy.k_target,
                    "quasi_identifiers": m.privacy.quasi_identifiers,
                    "below_k": m.privacy.below_k,
                    "age_reference_date": m.privacy.age_reference_date,
                    "date_shift_max_days": m.privacy.date_shift_max_days},
        "excluded_tables": dict(m.source.exclude_tables),
        "persons": report["persons"], "tables": tables,
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str), encoding="utf-8")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(staging: Path, final: Path) -> None:
    """Make the files read-only and readable by the service only (0400, folder 0700), flush
    them and the folder to disk, then rename the folder into place in one step (a reader sees
    no release or a whole one)."""
    for item in staging.iterdir():
        if item.is_file():
            item.chmod(0o400)
            _fsync_path(item)
    os.chmod(staging, 0o700)
    _fsync_path(staging)
    os.rename(staging, final)
    _fsync_path(final.parent)
