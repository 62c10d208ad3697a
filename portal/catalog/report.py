"""The de-identification report: checks run on the written release files themselves.

A report lists what was dropped, transformed and generalised (with counts), k-anonymity over the
declared quasi-identifiers, and a residual scan of every text column for identifier patterns.
``failures`` lists every check that failed; the builder refuses to publish a release with any.
The report holds counts and names only, never data values.
"""

from __future__ import annotations

from typing import Any

import duckdb

from portal.catalog import transforms as tx
from portal.catalog.deid import Plan, released_columns

# Patterns a residual scan looks for in released text (DuckDB RE2 syntax).
SCAN_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "phone": r"(^|[^0-9])(\+?1[ .-]?)?\(?[0-9]{3}\)?[ .-][0-9]{3}[ .-][0-9]{4}([^0-9]|$)",
    "ssn": r"(^|[^0-9])[0-9]{3}-[0-9]{2}-[0-9]{4}([^0-9]|$)",
    "mrn_like": r"(?i)(mrn[ :#]*[0-9]+|(^|[^0-9])[0-9]{7,10}([^0-9]|$))",
    "full_date": r"((19|20)[0-9]{2}[-/.](0?[1-9]|1[0-2])[-/.](0?[1-9]|[12][0-9]|3[01])"
                 r"|(0?[1-9]|1[0-2])/(0?[1-9]|[12][0-9]|3[01])/(19|20)?[0-9]{2})",
    "uuid": r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
}


def residual_scan(con: duckdb.DuckDBPyConnection, plan: Plan) -> tuple[list[dict[str, Any]],
                                                                         list[str]]:
    """Scan the distinct values of every released text column (both partitions) for identifier
    patterns. A match the card does not explicitly allow (``scan_allow`` with a reason) fails."""
    findings: list[dict[str, Any]] = []
    failures: list[str] = []
    for tname, spec in plan.manifest.tables.items():
        for cname, col in released_columns(spec):
            if col.type != "VARCHAR":
                continue
            values = (f'SELECT DISTINCT "{cname}" AS v FROM dev."{tname}" UNION '
                      f'SELECT DISTINCT "{cname}" FROM holdout."{tname}"')
            counts = ", ".join(f"count(*) FILTER (WHERE regexp_matches(v, '{p}'))"
                               for p in SCAN_PATTERNS.values())
            row = con.execute(f"SELECT count(*), {counts} FROM ({values}) WHERE v IS NOT NULL"
                              ).fetchone()
            for pattern, hits in zip(SCAN_PATTERNS, row[1:], strict=True):
                if not hits:
                    continue
                allowed = pattern in col.scan_allow
                findings.append({"table": tname, "column": cname, "pattern": pattern,
                                 "distinct_values": int(hits), "allowed": allowed,
                                 "reason": col.scan_allow_reason if allowed else None})
                if not allowed:
                    failures.append(f"{tname}.{cname}: {hits} distinct value(s) look like "
                                    f"{pattern.replace('_', ' ')}")
    return findings, failures


def structural_checks(con: duckdb.DuckDBPyConnection, plan: Plan) -> list[str]:
    """From the release files: only declared columns exist, direct identifiers are gone or
    pseudonymised, capped ages hold, partitions are disjoint and pseudonyms unique."""
    m = plan.manifest
    failures: list[str] = []
    for tname, spec in m.tables.items():
        for part in ("dev", "holdout"):
            actual = [r[0] for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = $1 AND "
                "table_name = $2 ORDER BY column_index", [part, tname]).fetchall()]
            expected = [n for n, _ in released_columns(spec)]
            if actual != expected:
                failures.append(f"{tname}: {part} partition columns differ from the card")
        for cname, col in spec.columns.items():
            if col.classification == "direct_identifier" and col.transform not in (
                    "drop", "pseudonymise"):
                failures.append(f"{tname}.{cname}: direct identifier left in the release")
            if col.transform == "birth_year_cap":
                floor = m.age_reference_year - tx.AGE_CAP
                n = _count_both(con, tname, f'"{cname}" < {floor}')
                if n:
                    failures.append(f"{tname}.{cname}: {n} person(s) older than 90 at the "
                                    "reference date")
            if col.transform == "age_cap":
                n = _count_both(con, tname, f'"{cname}" > {tx.AGE_CAP}')
                if n:
                    failures.append(f"{tname}.{cname}: {n} age(s) over 90")
    pt, key = m.split.person_table, m.split.person_key
    both = con.execute(f'SELECT count(*) FROM (SELECT "{key}" FROM dev."{pt}" INTERSECT '
                       f'SELECT "{key}" FROM holdout."{pt}")').fetchone()[0]
    if both:
        failures.append(f"{both} person(s) are in both the dev and the held-out partition")
    dupes = con.execute(f'SELECT count(*) - count(DISTINCT "{key}") FROM (SELECT "{key}" FROM '
                        f'dev."{pt}" UNION ALL SELECT "{key}" FROM holdout."{pt}")').fetchone()[0]
    if dupes:
        failures.append(f"{pt}.{key}: {dupes} duplicate pseudonym(s)")
    return failures


def _count_both(con: duckdb.DuckDBPyConnection, table: str, where: str) -> int:
    return int(con.execute(
        f'SELECT (SELECT count(*) FROM dev."{table}" WHERE {where}) + '
        f'(SELECT count(*) FROM holdout."{table}" WHERE {where})').fetchone()[0])


def kanon_on_release(con: duckdb.DuckDBPyConnection, plan: Plan) -> dict[str, Any] | None:
    """k-anonymity recomputed from the release files (both partitions together)."""
    m = plan.manifest
    qis = m.privacy.quasi_identifiers
    if not qis:
        return None
    pt = m.split.person_table
    cols = ", ".join(f'"{q}"' for q in qis)
    k = m.privacy.k_target
    row = con.execute(
        f'WITH r AS (SELECT {cols} FROM dev."{pt}" UNION ALL SELECT {cols} FROM holdout."{pt}"),'
        f" c AS (SELECT count(*) AS n FROM r GROUP BY {cols})"
        f" SELECT count(*), min(n), coalesce(sum(n) FILTER (WHERE n < {k}), 0) FROM c").fetchone()
    return {"classes": row[0], "smallest_class": row[1], "records_below_k": int(row[2])}


SMALL_CELL = 11  # counts below this are suppressed on cards and charts
AGE_BANDS = ((0, 17), (18, 44), (45, 64), (65, 89), (90, 200))
SEX_LABELS = {8507: "male", 8532: "female"}


def demographics(con: duckdb.DuckDBPyConnection, plan: Plan) -> dict[str, Any]:
    """Persons by age band (at the card's reference date) and sex, from the release files, for
    the catalog chart. Counts below 11 are suppressed (None). Needs year_of_birth and
    gender_concept_id on the person table; otherwise ``available`` is False."""
    m = plan.manifest
    pt = m.split.person_table
    cols = {n for n, _ in released_columns(m.tables[pt])}
    if not {"year_of_birth", "gender_concept_id"} <= cols:
        return {"available": False, "reason": "the person table has no year of birth and sex"}
    ref = m.age_reference_year
    band_case = " ".join(f"WHEN {ref} - year_of_birth BETWEEN {lo} AND {hi} THEN '{label}'"
                         for (lo, hi), label in zip(AGE_BANDS, _band_names(), strict=True))
    rows = con.execute(
        f'WITH r AS (SELECT year_of_birth, gender_concept_id FROM dev."{pt}" UNION ALL '
        f'SELECT year_of_birth, gender_concept_id FROM holdout."{pt}") '
        f"SELECT CASE {band_case} ELSE 'unknown' END AS band, gender_concept_id, count(*) "
        "FROM r GROUP BY ALL").fetchall()
    counts: dict[tuple[str, str], int] = {}
    for band_name, gender, n in rows:
        key = (band_name, SEX_LABELS.get(gender, "other or unknown"))
        counts[key] = counts.get(key, 0) + int(n)
    cells = [{"age_band": b, "sex": sx, "persons": n if n >= SMALL_CELL else None}
             for (b, sx), n in sorted(counts.items())]
    return {"available": True, "reference_date": m.privacy.age_reference_date,
            "small_cell_threshold": SMALL_CELL, "cells": cells}


def _band_names() -> list[str]:
    return [f"{lo}-{hi}" if hi < 200 else f"{lo}+" for lo, hi in AGE_BANDS]


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A readable summary for the data office (also written as report.md)."""
    lines = [f"# De-identification report: {report['dataset']} release {report['version']}", "",
             f"Result: {'PASSED' if report['passed'] else 'FAILED'}",
             f"Persons: {report['persons']['total']:,} in the source; "
             f"{report['persons']['dev']:,} dev, {report['persons']['holdout']:,} held out, "
             f"{report['persons']['suppressed']:,} suppressed", ""]
    lines.append("## Columns dropped")
    for item in report["dropped"]:
        lines.append(f"- {item['table']}.{item['column']} ({item['classification']})")
    lines += ["", "## Columns transformed"]
    for item in report["transformed"]:
        extra = ", ".join(f"{k}={v:,}" for k, v in item["counts"].items())
        lines.append(f"- {item['table']}.{item['column']}: {item['transform']} ({extra})")
    removed = [(t, v["rows_of_suppressed_persons"], v["rows_of_unknown_persons"])
               for t, v in report["tables"].items()
               if v.get("rows_of_suppressed_persons") or v.get("rows_of_unknown_persons")]
    if removed:
        lines += ["", "## Rows removed"]
        lines += [f"- {t}: {s:,} of suppressed persons, {u:,} of persons not in the person "
                  "table" for t, s, u in removed]
    lines += ["", "## k-anonymity"]
    k = report["k_anonymity"]
    if not k.get("applicable"):
        lines.append(f"- not applicable: {k.get('reason')}")
    else:
        lines.append(f"- quasi-identifiers: {', '.join(k['quasi_identifiers'])}; target k = "
                     f"{k['k_target']}")
        lines.append(f"- before treatment: smallest class {k['before']['smallest_class']}, "
                     f"{k['before']['records_below_k']:,} record(s) in classes below k")
        for step in k["treatment"]:
            if step["action"] == "generalise":
                lines.append(f"- treatment: {step['column']} generalised to "
                             f"{step['band_width']}-year bands; "
                             f"{step['records_below_k_after']:,} record(s) still below k")
            else:
                lines.append(f"- treatment: {step['persons']:,} person(s) in classes below k "
                             "suppressed (removed with all their rows)")
        lines.append(f"- in the release: smallest class {k['release']['smallest_class']}, "
                     f"{k['release']['records_below_k']:,} record(s) below k")
    lines += ["", "## Residual identifier scan"]
    if not report["residual_scan"]:
        lines.append("- no text value matched an identifier pattern")
    for f in report["residual_scan"]:
        state = f"allowed: {f['reason']}" if f["allowed"] else "NOT ALLOWED"
        lines.append(f"- {f['table']}.{f['column']}: {f['distinct_values']} distinct value(s) "
                     f"match {f['pattern']} ({state})")
    if report["failures"]:
        lines += ["", "## Failed checks"] + [f"- {f}" for f in report["failures"]]
    return lines
