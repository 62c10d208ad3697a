"""Release build throughput for omop_synth, against a plain DuckDB copy of the same tables.

Both run in the same process on the same raw source (generated first, not timed in the ratio):
- baseline: ``CREATE TABLE dst.t AS SELECT * FROM src.t`` for every table into a new file;
- release:  the full builder (manifest checks, person map, k-anonymity, every transform, the
  dev/held-out split into two files, the report's checks on the written files, publish).
Goal: the release build within 3x of the plain copy.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from portal.catalog.builder import build_release, manifest_path
from portal.catalog.manifest import load_manifest
from portal.catalog.sources import open_source
from portal.config import Settings
from portal.services.context import Context


def plain_copy(source: Path, target: Path) -> int:
    """Copy every table of the source as-is into a new DuckDB file. Returns rows copied."""
    con = duckdb.connect(str(target))
    try:
        con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'src'").fetchall()]
        rows = 0
        for table in tables:
            con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM src."{table}"')
            rows += con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        con.execute("CHECKPOINT")
        return rows
    finally:
        con.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench release")
    parser.add_argument("--persons", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-release-") as tmp:
        home = Path(tmp) / "home"
        settings = Settings.from_env({"PORTAL_HOME": str(home)})
        ctx = Context.open(settings)
        loaded = load_manifest(manifest_path(settings, "omop_synth"))
        t0 = time.perf_counter()
        source = open_source(settings, loaded.manifest, args.persons)
        generate_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        copied = plain_copy(source.path, Path(tmp) / "copy.duckdb")
        copy_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        result = build_release(settings, ctx.conn, "omop_synth", actor="bench",
                               persons=args.persons)
        build_s = time.perf_counter() - t0
        ctx.close()
    print(f"omop_synth persons:            {args.persons:,}")
    print(f"generate source:               {generate_s:.2f} s")
    print(f"plain DuckDB copy:             {copied:,} rows in {copy_s:.2f} s "
          f"({copied / copy_s:,.0f} rows/s)")
    print(f"release build:                 {result.rows:,} rows released in {build_s:.2f} s "
          f"({copied / build_s:,.0f} source rows/s)")
    ratio = build_s / copy_s
    print(f"release build / plain copy:    {ratio:.2f}x (goal: within 3x) "
          f"{'MET' if ratio <= 3 else 'MISSED'}")
