"""The trusted extract builder: one governed DuckDB file per (release version, resolved tier).

An extract holds only the tier's tables and columns — forbidden columns are absent, not nulled —
with row filters and transforms applied, built from the release's **dev partition only** (the
held-out partition is never opened here). Files are content-addressed by
:meth:`ResolvedTier.extract_key`, so grants with the same spec share one file and a policy or
release change yields a new one. Each file is written to a temporary name in the same folder,
checkpointed, and renamed into place: readers never see a half-written extract, and concurrent
builders of the same key are safe (the last rename wins with identical content).

Files are readable by the service only (mode 0600), or, when the service runs as root, also by
the group of the jailed SQL workers (:data:`WORKER_GID`, mode 0640), which no account has: a
worker sees the one extract bound into its jail and can read nothing else of the home even if
it could see it.

Security property 2 and 3 (docs/security-properties.md): this module is the only code that turns a
release into something untrusted SQL may open.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import duckdb

from portal.config import Settings
from portal.policy.engine import ResolvedTable, ResolvedTier
from portal.query.worker import connect_locked
from portal.sqltext import quote_ident, quote_literal
from portal.storage import unique_temp

WORKER_GID = 150_001  # the SQL workers' group (portal.query.pool); no account uses it


def extract_path(settings: Settings, resolved: ResolvedTier) -> Path:
    """Where the extract for ``resolved`` lives (whether or not it is built yet)."""
    return settings.extracts_dir / f"{resolved.dataset_id}-{resolved.extract_key()}.duckdb"




def _column_expression(column: str, transform: dict[str, Any] | None) -> str:
    col = quote_ident(column)
    if not transform:
        return col
    if "band" in transform:
        width = int(transform["band"])
        return f"CAST(floor({col} / {width}) * {width} AS BIGINT) AS {col}"
    if transform.get("date_to_year"):
        return f"CAST(year({col}) AS INTEGER) AS {col}"
    if "truncate_chars" in transform:
        return f"left(CAST({col} AS VARCHAR), {int(transform['truncate_chars'])}) AS {col}"
    raise ValueError(f"unknown transform {transform!r}")


def table_select(table: ResolvedTable, source_schema: str = "rel.main") -> str:
    """The trusted SELECT that materialises one governed table from the release."""
    columns = ", ".join(_column_expression(c, table.transforms.get(c)) for c in table.columns)
    where = f" WHERE ({table.row_filter})" if table.row_filter else ""
    return f"SELECT {columns} FROM {source_schema}.{quote_ident(table.name)}{where}"


def build_extract(settings: Settings, release: Any, resolved: ResolvedTier) -> Path:
    """Build (or reuse) the extract for ``resolved`` from ``release.dev_path``; return its path.

    Raises duckdb.Error if the release cannot be read (an internal error for callers)."""
    target = extract_path(settings, resolved)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = unique_temp(target)
    con = duckdb.connect(str(tmp), config={"threads": max(1, settings.query_threads)})
    try:
        con.execute(f"ATTACH {quote_literal(str(release.dev_path))} AS rel (READ_ONLY)")
        for table in resolved.tables.values():
            con.execute(f"CREATE TABLE {quote_ident(table.name)} AS {table_select(table)}")
        con.execute("DETACH rel")
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
        raise
    con.close()
    open_to_workers(tmp)
    os.replace(tmp, target)
    return target


def open_to_workers(path: Path) -> None:
    """Make ``path`` readable by the service and, when it runs as root, by the SQL workers'
    group; by nobody else. Idempotent (extracts built before this rule get it on first use)."""
    mode = 0o640 if os.geteuid() == 0 else 0o600
    info = path.stat()
    if os.geteuid() == 0 and info.st_gid != WORKER_GID:
        os.chown(path, info.st_uid, WORKER_GID)
    if info.st_mode & 0o777 != mode:
        os.chmod(path, mode)


def _open_locked(path: str) -> Any:
    """An extract opened by trusted code as the SQL workers open it: read-only and locked."""
    return connect_locked(duckdb, path, read_only=True, memory_mb=1024, threads=1)


@functools.lru_cache(maxsize=64)
def _schema_of(path: str, inode: int) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    con = _open_locked(path)
    try:
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'main' ORDER BY table_name, ordinal_position").fetchall()
    finally:
        con.close()
    schema: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in rows:
        schema.setdefault(table, []).append((column, dtype))
    return tuple((t, tuple(cols)) for t, cols in schema.items())


def extract_schema(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Tables and (column, type) pairs of an extract, read by trusted code. Extracts are
    immutable and content-addressed, so the answer is cached per file."""
    return {table: list(cols) for table, cols in _schema_of(str(path), path.stat().st_ino)}


@functools.lru_cache(maxsize=64)
def _row_counts_of(path: str, inode: int) -> tuple[tuple[str, int], ...]:
    con = _open_locked(path)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            " ORDER BY table_name").fetchall()]
        return tuple((t, int(con.execute(f"SELECT count(*) FROM {quote_ident(t)}").fetchone()[0]))
                     for t in tables)
    finally:
        con.close()


def extract_row_counts(path: Path) -> dict[str, int]:
    """Rows per table of an extract (row filters applied), read by trusted code; cached per
    file like :func:`extract_schema`."""
    return dict(_row_counts_of(str(path), path.stat().st_ino))


CONCEPT_COLUMNS = ("concept_id", "concept_name", "domain_id", "vocabulary_id",
                   "concept_class_id", "standard_concept", "concept_code")


def search_concepts(path: Path, text: str, limit: int = 50) -> list[dict[str, Any]]:
    """Rows of the extract's ``concept`` table whose name contains ``text`` (case-insensitive)
    or whose id or code equals it; only the vocabulary columns the extract holds. Trusted,
    parameterised SQL (the search text is never spliced into the statement). Returns [] when
    the extract has no ``concept`` table."""
    columns = [c for c, _ in extract_schema(path).get("concept", ())]
    shown = [c for c in CONCEPT_COLUMNS if c in columns]
    if "concept_name" not in shown:
        return []
    matches = ["concept_name ILIKE ? ESCAPE '\\'"]
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    params: list[Any] = [pattern]
    if "concept_code" in shown:
        matches.append("concept_code = ?")
        params.append(text)
    if "concept_id" in shown and text.strip().isdigit() and len(text.strip()) < 19:
        matches.append("concept_id = ?")
        params.append(int(text.strip()))
    order = "standard_concept = 'S' DESC, " if "standard_concept" in shown else ""
    sql = (f"SELECT {', '.join(quote_ident(c) for c in shown)} FROM concept"
           f" WHERE {' OR '.join(matches)} ORDER BY {order}length(concept_name), concept_name"
           f" LIMIT {max(1, min(int(limit), 200))}")
    con = _open_locked(str(path))
    try:
        cursor = con.cursor()
        rows = cursor.execute(sql, params).fetchmany(200)
    finally:
        con.close()
    return [dict(zip(shown, row, strict=True)) for row in rows]
