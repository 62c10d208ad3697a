"""Dataset manifests (data cards): the pydantic model, the strict loader and semantic checks.

A manifest declares, for every table and column of a source, its release type, a description,
a classification and the de-identification transform. Nothing passes through unclassified: the
builder compares the manifest with the source and refuses a source column the manifest does not
name, or a declared column the source lacks (see :func:`check_against_source`).

Every problem is reported as ``file:line: where: message``; messages never include data values.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from portal.errors import ConfigError
from portal.yamlstrict import _Reader, load_strict

IDENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
Classification = Literal["direct_identifier", "quasi_identifier", "sensitive", "clinical", "key"]
TransformKind = Literal["keep", "drop", "date_to_year", "date_shift", "birth_year_cap", "age_cap",
                        "zip3", "band", "pseudonymise"]
ReleaseType = Literal["BIGINT", "INTEGER", "DOUBLE", "VARCHAR", "DATE", "BOOLEAN"]
ScanPattern = Literal["email", "phone", "ssn", "mrn_like", "full_date", "uuid"]

CLASSIFICATIONS: tuple[str, ...] = Classification.__args__  # type: ignore[attr-defined]
TRANSFORMS: tuple[str, ...] = TransformKind.__args__  # type: ignore[attr-defined]

# The release type each transform produces (None: the declared type, cast if the source differs).
OUTPUT_TYPES: dict[str, tuple[str, ...] | None] = {
    "keep": None, "drop": None, "date_to_year": ("INTEGER",), "date_shift": ("DATE",),
    "birth_year_cap": ("INTEGER", "BIGINT"), "age_cap": ("INTEGER", "BIGINT"),
    "zip3": ("VARCHAR",), "band": ("VARCHAR",), "pseudonymise": ("BIGINT",),
}
# Transforms that leave no direct identifier behind.
SAFE_FOR_DIRECT_IDENTIFIERS = ("drop", "pseudonymise")
# Transforms that generalise a quasi-identifier found outside the quasi-identifier table.
GENERALISING = ("drop", "date_shift", "date_to_year", "zip3", "band", "birth_year_cap", "age_cap")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ColumnSpec(_Strict):
    type: ReleaseType
    description: str = Field(min_length=1, max_length=2000)
    classification: Classification
    transform: TransformKind = "keep"
    references: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
    bands: list[int | float] | None = Field(default=None, min_length=1, max_length=50)
    scan_allow: list[ScanPattern] = Field(default_factory=list, max_length=6)
    scan_allow_reason: str | None = Field(default=None, min_length=1, max_length=500)
    # Differential privacy (aggregate tiers with ``disclosure: dp``): the clipping bounds of a
    # numeric column for sum/avg, and the public set of values a group key can take (groups by
    # such a column are all shown, noisy, without partition selection). Both must be public
    # knowledge, not read from the data.
    dp_bounds: list[int | float] | None = Field(default=None, min_length=2, max_length=2)
    dp_keys: list[int | str] | None = Field(default=None, min_length=1, max_length=1000)


class TableSpec(_Strict):
    description: str = Field(min_length=1, max_length=2000)
    person_column: str | None = None
    columns: dict[str, ColumnSpec] = Field(min_length=1, max_length=500)


class Provenance(_Strict):
    source_package: str = Field(min_length=1, max_length=200)
    citation: str = Field(min_length=1, max_length=2000)
    licence: str = Field(min_length=1, max_length=200)
    url: str | None = Field(default=None, max_length=500)


class SourceSpec(_Strict):
    kind: Literal["eunomia", "sklearn_breast_cancer", "omop_synth"]
    persons: int | None = Field(default=None, ge=100, le=5_000_000)
    seed: int | None = Field(default=None, ge=0, le=2**31)
    exclude_tables: dict[str, str] = Field(default_factory=dict, max_length=200)


class SplitSpec(_Strict):
    person_table: str
    person_key: str
    holdout_fraction: float = Field(ge=0.05, le=0.5)
    rule: Literal["salted_hash"] = "salted_hash"


class Generalisation(_Strict):
    """Global recoding of an integer quasi-identifier to band starts; each width is tried in turn
    (coarser last) until the persons still below k fit within max_suppressed_fraction."""

    column: str
    band_widths: list[int] = Field(min_length=1, max_length=5)


class PrivacySpec(_Strict):
    k_target: int = Field(ge=2, le=100)
    quasi_identifiers: list[str] = Field(default_factory=list, max_length=20)
    below_k: Literal["suppress", "generalise"] = "suppress"
    generalise: Generalisation | None = None
    max_suppressed_fraction: float = Field(default=0.05, ge=0.0, le=0.2)
    age_reference_date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    date_shift_max_days: int = Field(default=182, ge=1, le=366)
    restricted_zip3: list[str] = Field(default_factory=list, max_length=200)


class Manifest(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=5000)
    standard: str = Field(min_length=1, max_length=200)
    provenance: Provenance
    terms: str = Field(min_length=1, max_length=2000)
    source: SourceSpec
    split: SplitSpec
    privacy: PrivacySpec
    tables: dict[str, TableSpec] = Field(min_length=1, max_length=200)

    @property
    def age_reference_year(self) -> int:
        return date.fromisoformat(self.privacy.age_reference_date).year


class LoadedManifest:
    """A validated manifest with the file it came from (for error lines) and its content hash."""

    def __init__(self, manifest: Manifest, reader: _Reader, name: str, digest: str) -> None:
        self.manifest = manifest
        self.reader = reader
        self.name = name
        self.digest = digest

    def where(self, *path: str | int) -> str:
        line = self.reader.line_for(tuple(path))
        return f"{self.name}:{line}" if line else self.name


def load_manifest(path: Path) -> LoadedManifest:
    """Load and check one manifest file. Raises ConfigError listing every problem with file:line."""
    try:
        raw = path.read_bytes()
    except OSError:
        raise ConfigError(problems=[f"{path.name}: cannot be read"]) from None
    try:
        manifest, reader = load_strict(path, Manifest, name=path.name)
    except ConfigError as exc:
        raise ConfigError(problems=exc.problems, code="invalid_manifest") from None
    loaded = LoadedManifest(manifest, reader, path.name, hashlib.sha256(raw).hexdigest())
    problems = semantic_problems(loaded)
    if manifest.id != path.stem:
        problems.insert(0, f"{loaded.where('id')}: id {manifest.id!r} must match the file name")
    if problems:
        raise ConfigError(problems=problems, code="invalid_manifest")
    return loaded


def semantic_problems(loaded: LoadedManifest) -> list[str]:
    """Cross-field checks the schema cannot express, each naming file:line, table and column."""
    m = loaded.manifest
    problems: list[str] = []
    for tname, table in m.tables.items():
        if not IDENT.match(tname):
            problems.append(f"{loaded.where('tables', tname)}: table {tname!r}: names must be "
                            "lowercase letters, digits and underscores")
        for cname, col in table.columns.items():
            problems += _column_problems(loaded, tname, cname, col)
        if table.person_column is not None:
            pc = table.columns.get(table.person_column)
            if pc is None or pc.transform != "pseudonymise":
                problems.append(f"{loaded.where('tables', tname, 'person_column')}: table {tname}: "
                                "person_column must name a column of the table whose transform "
                                "is pseudonymise")
        elif any(c.transform == "date_shift" for c in table.columns.values()):
            problems.append(f"{loaded.where('tables', tname)}: table {tname}: date_shift needs "
                            "a person_column (the shift is per person)")
    problems += _split_and_privacy_problems(loaded)
    return problems


def _column_problems(loaded: LoadedManifest, tname: str, cname: str, col: ColumnSpec) -> list[str]:
    where = f"{loaded.where('tables', tname, 'columns', cname)}: {tname}.{cname}"
    problems = []
    if not IDENT.match(cname):
        problems.append(f"{where}: names must be lowercase letters, digits and underscores")
    direct = col.classification == "direct_identifier"
    if direct and col.transform not in SAFE_FOR_DIRECT_IDENTIFIERS:
        problems.append(f"{where}: a direct identifier must be dropped or pseudonymised; "
                        f"transform {col.transform} would leave it in the release")
    if col.classification == "key" and col.transform not in ("pseudonymise", "drop"):
        problems.append(f"{where}: a key must be pseudonymised or dropped")
    allowed = OUTPUT_TYPES[col.transform]
    if allowed is not None and col.type not in allowed:
        problems.append(f"{where}: transform {col.transform} produces {' or '.join(allowed)}, "
                        f"not {col.type}")
    if (col.transform == "band") != (col.bands is not None):
        problems.append(f"{where}: bands are required with transform band, and only then")
    if col.bands is not None and list(col.bands) != sorted(set(col.bands)):
        problems.append(f"{where}: bands must be strictly increasing")
    if col.dp_bounds is not None and (col.type not in ("BIGINT", "INTEGER", "DOUBLE")
                                      or not col.dp_bounds[0] < col.dp_bounds[1]):
        problems.append(f"{where}: dp_bounds need a numeric column and lower < upper")
    if col.dp_keys is not None and len(set(col.dp_keys)) != len(col.dp_keys):
        problems.append(f"{where}: dp_keys must not repeat")
    if (col.dp_bounds or col.dp_keys) and col.transform not in ("keep", "birth_year_cap",
                                                                "age_cap"):
        problems.append(f"{where}: dp_bounds and dp_keys describe released values; transform "
                        f"{col.transform} changes them")
    if col.references is not None:
        target_table, target_column = col.references.split(".")
        target = loaded.manifest.tables.get(target_table)
        spec = target.columns.get(target_column) if target else None
        if col.transform != "pseudonymise" or spec is None or spec.transform != "pseudonymise" \
                or (target_table, target_column) == (tname, cname):
            problems.append(f"{where}: references must name another table's pseudonymised key, "
                            "and the column itself must be pseudonymised")
    if col.scan_allow and not col.scan_allow_reason:
        problems.append(f"{where}: scan_allow needs a scan_allow_reason for the reviewer")
    return problems


def _split_and_privacy_problems(loaded: LoadedManifest) -> list[str]:
    m = loaded.manifest
    problems = []
    ptable = m.tables.get(m.split.person_table)
    if ptable is None:
        return [f"{loaded.where('split', 'person_table')}: split.person_table names no table"]
    key = ptable.columns.get(m.split.person_key)
    if key is None or key.transform != "pseudonymise" or ptable.person_column != m.split.person_key:
        problems.append(f"{loaded.where('split', 'person_key')}: split.person_key must be the "
                        "person table's person_column, pseudonymised")
    qis = m.privacy.quasi_identifiers
    for i, qi in enumerate(qis):
        col = ptable.columns.get(qi)
        if col is None or col.classification != "quasi_identifier" or col.transform == "drop":
            problems.append(f"{loaded.where('privacy', 'quasi_identifiers', i)}: {qi!r} must be "
                            f"a kept quasi_identifier column of table {m.split.person_table}")
    for tname, table in m.tables.items():
        for cname, col in table.columns.items():
            if col.classification != "quasi_identifier" or col.transform == "drop":
                continue
            if tname == m.split.person_table and cname not in qis:
                problems.append(f"{loaded.where('tables', tname, 'columns', cname)}: "
                                f"{tname}.{cname}: quasi-identifier not listed in "
                                "privacy.quasi_identifiers")
            elif tname != m.split.person_table and col.transform not in GENERALISING:
                problems.append(f"{loaded.where('tables', tname, 'columns', cname)}: "
                                f"{tname}.{cname}: a quasi-identifier outside the person table "
                                "must be generalised (date_shift, date_to_year, zip3, band) or "
                                "dropped")
    gen = m.privacy.generalise
    if (m.privacy.below_k == "generalise") != (gen is not None):
        problems.append(f"{loaded.where('privacy', 'below_k')}: privacy.generalise is required "
                        "when below_k is generalise, and only then")
    if gen is not None and (list(gen.band_widths) != sorted(set(gen.band_widths))
                            or not all(2 <= w <= 50 for w in gen.band_widths)):
        problems.append(f"{loaded.where('privacy', 'generalise', 'band_widths')}: band widths "
                        "must be increasing whole numbers from 2 to 50")
    if gen is not None and (gen.column not in qis or ptable.columns[gen.column].type
                            not in ("INTEGER", "BIGINT")):
        problems.append(f"{loaded.where('privacy', 'generalise', 'column')}: the generalised "
                        "column must be an integer quasi-identifier")
    for i, prefix in enumerate(m.privacy.restricted_zip3):
        if not re.fullmatch(r"\d{3}", prefix):
            problems.append(f"{loaded.where('privacy', 'restricted_zip3', i)}: "
                            "privacy.restricted_zip3: ZIP prefixes are three digits, quoted")
    try:
        date.fromisoformat(m.privacy.age_reference_date)
    except ValueError:
        problems.append(f"{loaded.where('privacy', 'age_reference_date')}: not a valid date")
    return problems


def check_against_source(loaded: LoadedManifest,
                         source_tables: Mapping[str, Mapping[str, str]]) -> None:
    """Compare the manifest with the source's tables and columns (lowercased names → types).

    Raises ConfigError (code ``manifest_source_mismatch``) naming each unclassified source table
    or column and each declared table or column the source lacks."""
    m = loaded.manifest
    problems = []
    for tname in sorted(source_tables):
        if tname not in m.tables and tname not in m.source.exclude_tables:
            problems.append(f"{loaded.name}: source table {tname!r} is not classified (declare "
                            "it under tables, or under source.exclude_tables with a reason)")
    for tname in m.source.exclude_tables:
        if tname not in source_tables:
            problems.append(f"{loaded.where('source', 'exclude_tables', tname)}: excluded table "
                            f"{tname!r} is not in the source")
    for tname, table in m.tables.items():
        if tname not in source_tables:
            problems.append(f"{loaded.where('tables', tname)}: table {tname!r} is declared but "
                            "the source has no such table")
            continue
        src_cols = source_tables[tname]
        for cname in src_cols:
            if cname not in table.columns:
                problems.append(f"{loaded.where('tables', tname, 'columns')}: {tname}.{cname}: "
                                "source column is not classified in the manifest")
        for cname in table.columns:
            if cname not in src_cols:
                problems.append(f"{loaded.where('tables', tname, 'columns', cname)}: "
                                f"{tname}.{cname}: declared but the source has no such column")
    if problems:
        raise ConfigError(problems=problems, code="manifest_source_mismatch")


def manifest_paths(datasets_dir: Path) -> dict[str, Path]:
    """Bundled manifests by dataset id (file stem), sorted."""
    if not datasets_dir.is_dir():
        return {}
    return {p.stem: p for p in sorted(datasets_dir.glob("*.yaml"))}
