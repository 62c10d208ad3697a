"""A de-identification report (``report.json``) as sections for the screen: a title, plain
sentences and a table per section (no streamlit here, so it is tested without it).

Sentences are plain text built from the report's figures and names; the renderer escapes them
before any markdown element shows them, and tables are shown as grids (cells are text, never
markup). Nothing here is parsed from ``report.md``: the structured report is the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Section:
    """One part of the report: ``level`` is ``ok``, ``problem`` or ``info``."""

    title: str
    lines: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    level: str = "info"


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def split(report: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Persons and rows in the dev partition, the held-out partition and suppressed (persons
    removed for k-anonymity, with all their rows); rows also count those whose person is not in
    the person table (never released)."""
    persons = report.get("persons") or {}
    tables = (report.get("tables") or {}).values()
    return {
        "persons": {"dev": persons.get("dev", 0), "holdout": persons.get("holdout", 0),
                    "suppressed": persons.get("suppressed", 0),
                    "total": persons.get("total", 0)},
        "rows": {"dev": sum(t.get("dev_rows") or 0 for t in tables),
                 "holdout": sum(t.get("holdout_rows") or 0 for t in tables),
                 "suppressed": sum(t.get("rows_of_suppressed_persons") or 0 for t in tables),
                 "unknown_person": sum(t.get("rows_of_unknown_persons") or 0 for t in tables)},
    }


def result_section(report: dict[str, Any]) -> Section:
    passed = bool(report.get("passed"))
    lines = [f"De-identification checks {'passed' if passed else 'FAILED'}: release "
             f"{report.get('version')} of {report.get('dataset')}"
             + ("." if passed else " was not published.")]
    lines += [f"Failed: {f}" for f in report.get("failures") or []]
    return Section("Result", lines, level="ok" if passed else "problem")


def persons_section(report: dict[str, Any]) -> Section:
    s = split(report)
    p, r = s["persons"], s["rows"]
    lines = [f"{_n(p['total'])} persons in the source: {_n(p['dev'])} in the dev partition "
             f"(queryable), {_n(p['holdout'])} held out (validation only), "
             f"{_n(p['suppressed'])} suppressed for k-anonymity.",
             f"{_n(r['dev'])} rows dev, {_n(r['holdout'])} held out, {_n(r['suppressed'])} of "
             f"suppressed persons removed, {_n(r['unknown_person'])} of persons not in the "
             "person table removed."]
    rows = [{"table": name, "source rows": t.get("source_rows"), "dev": t.get("dev_rows"),
             "held out": t.get("holdout_rows"),
             "of suppressed persons": t.get("rows_of_suppressed_persons", 0),
             "person not in person table": t.get("rows_of_unknown_persons", 0)}
            for name, t in (report.get("tables") or {}).items()]
    return Section("Persons and rows", lines, rows)


def dropped_section(report: dict[str, Any]) -> Section:
    dropped = report.get("dropped") or []
    rows = [{"table": d["table"], "column": d["column"], "classification": d["classification"],
             "non-empty values removed": d.get("values_removed")} for d in dropped]
    return Section("Columns dropped", [f"{len(dropped)} column(s) are not in the release."], rows)


def transformed_section(report: dict[str, Any]) -> Section:
    items = report.get("transformed") or []
    rows = [{"table": t["table"], "column": t["column"], "classification": t["classification"],
             "transform": t["transform"],
             "counts": ", ".join(f"{k.replace('_', ' ')} {_n(v)}"
                                 for k, v in (t.get("counts") or {}).items())}
            for t in items]
    lines = [f"{len(items)} column(s) released transformed."]
    lines += [f"{g['table']}.{g['column']} generalised to {g['band_width']}-year bands."
              for g in report.get("generalised") or []]
    return Section("Columns transformed", lines, rows)


def _stage(stage: str, figures: dict[str, Any]) -> dict[str, str]:
    """One row of the k-anonymity table; a figure a step does not recompute reads ``—``."""
    return {"stage": stage, **{label: "—" if figures.get(key) is None else _n(figures[key])
                               for key, label in (("classes", "equivalence classes"),
                                                  ("smallest_class", "smallest class"),
                                                  ("records_below_k", "records below k"))}}


def kanon_section(report: dict[str, Any]) -> Section:
    k = report.get("k_anonymity") or {}
    if not k.get("applicable"):
        return Section("k-anonymity", [f"Not applicable: {k.get('reason', 'no reason given')}."])
    before, release = k.get("before") or {}, k.get("release") or {}
    lines = [f"Target k = {k['k_target']} over {', '.join(k.get('quasi_identifiers', []))}"
             f" (below k: {k.get('below_k_policy', 'suppress')})."]
    rows = [_stage("before treatment", before)]
    for step in k.get("treatment") or []:
        if step["action"] == "generalise":
            rows.append(_stage(f"{step['column']} in {step['band_width']}-year bands",
                               {"records_below_k": step.get("records_below_k_after")}))
        else:
            rows.append(_stage(f"{_n(step['persons'])} person(s) suppressed",
                               {"records_below_k": 0}))
    rows.append(_stage("in the release files", release))
    if k.get("suppressed_fraction") is not None:
        lines.append(f"Suppressed {k['suppressed_fraction']:.2%} of persons (the card allows at "
                     f"most {k.get('max_suppressed_fraction', 0):.0%}).")
    ok = (release.get("records_below_k") or 0) == 0
    return Section("k-anonymity", lines, rows, level="ok" if ok else "problem")


def scan_section(report: dict[str, Any]) -> Section:
    findings = report.get("residual_scan") or []
    patterns = ", ".join(p.replace("_", " ") for p in report.get("scan_patterns") or [])
    lines = [f"Every released text column was scanned for: {patterns or 'identifier patterns'}."]
    if not findings:
        lines.append("No text value matched an identifier pattern.")
    rows = [{"table": f["table"], "column": f["column"], "pattern": f["pattern"],
             "distinct values": f["distinct_values"],
             "allowed": "yes" if f["allowed"] else "NO",
             "reason": f.get("reason") or ""} for f in findings]
    bad = any(not f["allowed"] for f in findings)
    return Section("Residual identifier scan", lines, rows, level="problem" if bad else "ok")


def sections(report: dict[str, Any]) -> list[Section]:
    """Every section of the report, in the order the data-office guide reads them."""
    return [result_section(report), persons_section(report), dropped_section(report),
            transformed_section(report), kanon_section(report), scan_section(report)]
