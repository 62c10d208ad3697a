"""The de-identification plan of a build, as SQL: the person map, k-anonymity treatment and the
SELECT that produces each released table. Runs inside the builder's DuckDB connection, where the
raw source is attached read-only as ``src`` and the dataset key is a DuckDB variable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from portal.catalog import transforms as tx
from portal.catalog.manifest import ColumnSpec, Manifest, TableSpec
from portal.catalog.sources import SourceColumn


@dataclass
class Plan:
    """What the build decided, for the report: k-anonymity figures and treatments."""

    manifest: Manifest
    source: dict[str, dict[str, SourceColumn]]
    generalised: dict[str, int] = field(default_factory=dict)  # column -> band width
    kanon: dict[str, Any] = field(default_factory=dict)
    persons_total: int = 0
    persons_suppressed: int = 0
    key_maps: dict[tuple[str, str], str] = field(default_factory=dict)  # (table, col) -> map


_FLOATING = ("DOUBLE", "FLOAT", "REAL")


def _key_value(value_sql: str, source_type: str) -> str:
    """A key's value as it is hashed (floating keys as BIGINT, so 1.0 and 1 map alike)."""
    if source_type.upper() in _FLOATING or source_type.upper().startswith("DECIMAL"):
        return f"CAST({value_sql} AS BIGINT)"
    return value_sql


def build_key_maps(con: duckdb.DuckDBPyConnection, plan: Plan) -> None:
    """For each key that other columns reference (``references:`` on the card), hash every
    distinct value once into a temp map; the key and its references then join the map instead
    of hashing every row again. Same pseudonyms either way (same keyed hash)."""
    targets = sorted({tuple(c.references.split(".")) for t in plan.manifest.tables.values()
                      for c in t.columns.values() if c.references})
    for i, (table, column) in enumerate(targets):
        name = f"keymap_{i}"
        src = plan.source[table][column]
        value = _key_value(src.sql("s"), src.type)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT src_id, "
            f"{tx.pseudonym_from_hex(tx.keyed_hash_hex('src_id'))} AS pseudo FROM "
            f'(SELECT DISTINCT {value} AS src_id FROM src."{table}" s WHERE {value} IS NOT NULL)')
        plan.key_maps[(table, column)] = name


def _map_for(plan: Plan, table: str, name: str, col: ColumnSpec) -> str | None:
    if col.references:
        target = tuple(col.references.split("."))
        return plan.key_maps.get((target[0], target[1]))
    return plan.key_maps.get((table, name))


def _src(plan: Plan, table: str, column: str) -> str:
    return plan.source[table][column].sql("s")


def _src_type(plan: Plan, table: str, column: str) -> str:
    return plan.source[table][column].type


def column_sql(plan: Plan, table: str, name: str, col: ColumnSpec,
               alias: str | None = None) -> str:
    """The released value of one column (its transform applied), as a SQL expression over the
    source row ``s``, the person map row ``pm`` and, for mapped keys, the key map ``alias``."""
    value = _src(plan, table, name)
    stype = _src_type(plan, table, name)
    m = plan.manifest
    kind = col.transform
    if kind == "pseudonymise":
        tspec = m.tables[table]
        if tspec.person_column == name:
            return "pm.pseudo_id"
        direct = tx.pseudonymise(value, stype)
        if alias is None:
            return direct
        # a value missing from the map (a dangling reference) is hashed directly: same result
        return f"(CASE WHEN {alias}.pseudo IS NOT NULL THEN {alias}.pseudo ELSE {direct} END)"
    if kind == "date_shift":
        return tx.date_shift(value, "pm.shift_days")
    if kind == "date_to_year":
        return tx.date_to_year(value)
    if kind == "birth_year_cap":
        expr = tx.birth_year_cap(value, m.age_reference_year)
    elif kind == "age_cap":
        expr = tx.age_cap(value)
    elif kind == "zip3":
        return tx.zip3(value, m.privacy.restricted_zip3)
    elif kind == "band":
        return tx.band(tx.cast_to(value, "DOUBLE", stype), list(col.bands or []))
    else:  # keep
        expr = tx.cast_to(value, col.type, stype)
    if table == m.split.person_table and name in plan.generalised:
        expr = tx.generalise_integer(expr, plan.generalised[name])
        if kind == "birth_year_cap":  # a band start below the cap would re-open ages over 90
            expr = tx.birth_year_cap(expr, m.age_reference_year)
    return expr


def released_columns(table: TableSpec) -> list[tuple[str, ColumnSpec]]:
    return [(n, c) for n, c in table.columns.items() if c.transform != "drop"]


def table_select(plan: Plan, source_table_sql: str, table: str, holdout: bool | None) -> str:
    """SELECT producing one partition of a released table. ``holdout`` None: a reference table
    without persons (copied whole to both partitions)."""
    spec = plan.manifest.tables[table]
    exprs, joins = [], []
    for n, c in released_columns(spec):
        keymap = _map_for(plan, table, n, c) if c.transform == "pseudonymise" \
            and spec.person_column != n else None
        alias = None
        if keymap is not None:
            alias = f"k{len(joins)}"
            src = plan.source[table][n]
            joins.append(f" LEFT JOIN {keymap} {alias} ON {alias}.src_id = "
                         f"{_key_value(src.sql('s'), src.type)}")
        exprs.append(f'{column_sql(plan, table, n, c, alias)} AS "{n}"')
    select = f"SELECT {', '.join(exprs)} FROM {source_table_sql} s"
    if spec.person_column is None:
        return select + "".join(joins)
    key = _src(plan, table, spec.person_column)
    flag = "" if holdout is None else f" AND pm.holdout = {str(holdout).upper()}"
    return (f"{select} JOIN pmap pm ON pm.src_id = {key}{''.join(joins)}"
            f" WHERE NOT pm.suppressed{flag}")


def build_person_map(con: duckdb.DuckDBPyConnection, plan: Plan, person_table_sql: str) -> int:
    """One row per person of the person table: source key, keyed hash, pseudonym, hold-out flag,
    date shift, suppression flag. Returns the number of persons."""
    m = plan.manifest
    key = _src(plan, m.split.person_table, m.split.person_key)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE pmap AS "
        f"WITH p AS (SELECT DISTINCT {key} AS src_id FROM {person_table_sql} s"
        f" WHERE {key} IS NOT NULL), "
        f"h AS (SELECT src_id, {tx.keyed_hash_hex('src_id')} AS h FROM p) "
        f"SELECT src_id, {tx.pseudonym_from_hex('h')} AS pseudo_id, "
        f"{tx.holdout_flag('h', m.split.holdout_fraction)} AS holdout, "
        f"CAST({tx.shift_days('h', m.privacy.date_shift_max_days)} AS INTEGER) AS shift_days, "
        "FALSE AS suppressed FROM h"
    )
    plan.persons_total = con.execute("SELECT count(*) FROM pmap").fetchone()[0]
    return plan.persons_total


def _classes(con: duckdb.DuckDBPyConnection, plan: Plan, person_table_sql: str) -> dict[str, Any]:
    m = plan.manifest
    table = m.split.person_table
    spec = m.tables[table]
    qis = m.privacy.quasi_identifiers
    exprs = ", ".join(f'{column_sql(plan, table, q, spec.columns[q])} AS "{q}"' for q in qis)
    key = _src(plan, table, m.split.person_key)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE qi AS SELECT pm.src_id, {exprs} FROM {person_table_sql} s"
        f" JOIN pmap pm ON pm.src_id = {key} WHERE NOT pm.suppressed")
    group = ", ".join(f'"{q}"' for q in qis)
    k = m.privacy.k_target
    row = con.execute(
        f"WITH c AS (SELECT count(*) AS n FROM qi GROUP BY {group}) "
        f"SELECT count(*), min(n), coalesce(sum(n) FILTER (WHERE n < {k}), 0),"
        f" count(*) FILTER (WHERE n < {k}) FROM c").fetchone()
    return {"classes": row[0], "smallest_class": row[1], "records_below_k": int(row[2]),
            "classes_below_k": row[3]}


def apply_k_anonymity(con: duckdb.DuckDBPyConnection, plan: Plan, person_table_sql: str) -> None:
    """Measure k-anonymity over the quasi-identifiers as released; below the target, generalise
    (if the card says so) and then suppress the persons still in small classes. Records the
    figures in ``plan.kanon``; the builder fails the build if suppression exceeds the card's
    ``max_suppressed_fraction``."""
    m = plan.manifest
    qis = m.privacy.quasi_identifiers
    if not qis:
        plan.kanon = {"applicable": False, "reason": "the card declares no quasi-identifiers"}
        return
    before = _classes(con, plan, person_table_sql)
    steps: list[dict[str, Any]] = []
    current = before
    gen = m.privacy.generalise
    limit = m.privacy.max_suppressed_fraction * plan.persons_total
    if current["records_below_k"] and m.privacy.below_k == "generalise" and gen:
        for width in gen.band_widths:  # "generalise further" until suppression fits
            plan.generalised[gen.column] = width
            current = _classes(con, plan, person_table_sql)
            steps.append({"action": "generalise", "column": gen.column, "band_width": width,
                          "records_below_k_after": current["records_below_k"]})
            if current["records_below_k"] <= limit:
                break
    if current["records_below_k"]:
        group = ", ".join(f'"{q}"' for q in qis)
        con.execute(
            f"UPDATE pmap SET suppressed = TRUE WHERE src_id IN (SELECT src_id FROM ("
            f" SELECT src_id, count(*) OVER (PARTITION BY {group}) AS n FROM qi)"
            f" WHERE n < {m.privacy.k_target})")
        plan.persons_suppressed = con.execute(
            "SELECT count(*) FROM pmap WHERE suppressed").fetchone()[0]
        steps.append({"action": "suppress", "persons": plan.persons_suppressed})
        current = _classes(con, plan, person_table_sql)
    plan.kanon = {
        "applicable": True, "quasi_identifiers": list(qis), "k_target": m.privacy.k_target,
        "below_k_policy": m.privacy.below_k, "before": before, "treatment": steps,
        "after": current, "persons_suppressed": plan.persons_suppressed,
        "suppressed_fraction": (plan.persons_suppressed / plan.persons_total
                                if plan.persons_total else 0.0),
        "max_suppressed_fraction": m.privacy.max_suppressed_fraction,
    }


def transform_counts(con: duckdb.DuckDBPyConnection, plan: Plan, table: str,
                     source_table_sql: str) -> dict[str, Any]:
    """Counts over the source for the report, one scan per table: rows, and per column how many
    values were dropped, shifted, capped, pseudonymised, set to 000, or failed a cast."""
    m = plan.manifest
    spec = m.tables[table]
    parts = ["count(*)"]
    labels: list[tuple[str, str]] = []
    for name, col in spec.columns.items():
        value, stype = _src(plan, table, name), _src_type(plan, table, name)
        if col.transform == "birth_year_cap":
            capped = tx.birth_year_capped(value, m.age_reference_year)
            parts.append(f"count(*) FILTER (WHERE {capped})")
            labels.append((name, "capped"))
        elif col.transform == "age_cap":
            parts.append(f"count(*) FILTER (WHERE CAST({value} AS INTEGER) > 89)")
            labels.append((name, "capped"))
        elif col.transform == "zip3":
            zipped = tx.zip3(value, m.privacy.restricted_zip3)
            parts.append(f"count(*) FILTER (WHERE {zipped} = '000')")
            labels.append((name, "set_to_000"))
        elif col.transform == "keep" and stype.upper() != col.type:
            parts.append(f"count(*) FILTER (WHERE {value} IS NOT NULL AND "
                         f"{tx.cast_to(value, col.type, stype)} IS NULL)")
            labels.append((name, "cast_failed_to_null"))
        parts.append(f"count({value})")
        labels.append((name, "non_null"))
    row = con.execute(f"SELECT {', '.join(parts)} FROM {source_table_sql} s").fetchone()
    columns: dict[str, dict[str, Any]] = {}
    for (name, what), value in zip(labels, row[1:], strict=True):
        columns.setdefault(name, {"transform": spec.columns[name].transform})[what] = int(value)
    result: dict[str, Any] = {"source_rows": int(row[0]), "columns": columns}
    if spec.person_column is not None:
        key = _src(plan, table, spec.person_column)
        result["rows_of_unknown_persons"] = int(con.execute(
            f"SELECT count(*) FROM {source_table_sql} s ANTI JOIN pmap pm ON pm.src_id = {key}"
        ).fetchone()[0])
    return result
