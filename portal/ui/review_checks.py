"""What staff review before releasing a validation report: the disclosure checks and flags a
run records, and the report's figures as rows, exact (no streamlit here, so it is tested
without it).

Checks are read from wherever the run or its report carries them (``checks``, ``flags`` or
``singling_out`` on the run, the report, or its ``review`` or ``privacy`` block; the portal's
singling-out check is ``{"flagged", "reasons", "signals"}`` on both), in any of the usual
shapes: a list of entries, a mapping of name to entry, or plain strings. An entry counts as
flagged when it says so (``flagged``/``passed``/``status``); anything else it holds (a nested
``signals`` block one level up) is shown as an exact figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FLAGGED_STATUSES = {"flagged", "failed", "fail", "withheld", "held", "warning"}
_NAME_KEYS = ("check", "name", "code", "kind")
_DETAIL_KEYS = ("detail", "message", "reason", "reasons", "description")
_STATE_KEYS = ("flagged", "passed", "ok", "status")


@dataclass(frozen=True)
class ReviewCheck:
    name: str
    flagged: bool
    detail: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


def _flagged(entry: dict[str, Any]) -> bool:
    if entry.get("flagged") is not None:
        return bool(entry["flagged"])
    if entry.get("passed") is not None:
        return not entry["passed"]
    if entry.get("ok") is not None:
        return not entry["ok"]
    return str(entry.get("status", "")).lower() in FLAGGED_STATUSES


def _entry(name: str | None, value: Any) -> ReviewCheck:
    if isinstance(value, bool):
        return ReviewCheck(name or "check", flagged=value)
    if not isinstance(value, dict):
        return ReviewCheck(name or "flag", flagged=True, detail=str(value))
    found = next((str(value[k]) for k in _NAME_KEYS if value.get(k)), name or "check")
    detail = next((_text(value[k]) for k in _DETAIL_KEYS if value.get(k)), "")
    skip = {*_NAME_KEYS, *_DETAIL_KEYS, *_STATE_KEYS}
    figures: dict[str, Any] = {}
    for key, item in value.items():
        if key in skip:
            continue
        if isinstance(item, dict):  # e.g. ``signals``: its figures, one level up
            figures.update(item)
        else:
            figures[key] = item
    return ReviewCheck(found, _flagged(value), detail, figures)


def _text(value: Any) -> str:
    return "; ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _entries(source: Any, name: str | None = None) -> list[ReviewCheck]:
    if not source:
        return []
    if isinstance(source, dict):
        if any(k in source for k in _STATE_KEYS):  # one check, not a mapping of checks
            return [_entry(name, source)]
        return [_entry(str(name), value) for name, value in source.items()]
    if isinstance(source, list | tuple):
        return [_entry(None, item) for item in source]
    return [_entry(None, source)]


def review_checks(run: dict[str, Any], report: dict[str, Any] | None) -> list[ReviewCheck]:
    """Every check or flag the run record and its report expose, flagged ones first."""
    report = report or {}
    blocks = [run, report] + [report[k] for k in ("review", "privacy")
                              if isinstance(report.get(k), dict)]
    found: list[ReviewCheck] = []
    seen: set[tuple[str, str]] = set()
    for block in blocks:
        for key in ("checks", "flags", "singling_out"):
            for check in _entries(block.get(key), key if key == "singling_out" else None):
                seen_key = (check.name, check.detail)
                if seen_key not in seen:
                    seen.add(seen_key)
                    found.append(check)
    return sorted(found, key=lambda c: not c.flagged)


def exact(value: Any) -> str:
    """A figure as staff see it: the full stored value, never rounded for display."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {exact(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(exact(v) for v in value)
    return "—" if value is None else str(value)


def check_rows(checks: list[ReviewCheck]) -> list[dict[str, str]]:
    return [{"check": c.name, "result": "FLAGGED" if c.flagged else "passed",
             "detail": c.detail, "figures": exact(c.figures) if c.figures else ""}
            for c in checks]


def _interval(entry: Any) -> dict[str, str]:
    entry = entry if isinstance(entry, dict) else {"value": entry}
    shown = {"value": exact(entry.get("value")), "95% CI lower": exact(entry.get("lower")),
             "95% CI upper": exact(entry.get("upper"))}
    if entry.get("not_estimable"):
        shown["value"] = f"not estimable: {entry['not_estimable']}"
    return shown


def overall_rows(figures: dict[str, Any]) -> list[dict[str, str]]:
    overall = figures.get("overall") or {}
    calibration = overall.get("calibration") or {}
    rows = [{"figure": "cases", "value": exact(overall.get("n"))},
            {"figure": "positives", "value": exact(overall.get("positives"))}]
    for label, entry in (("prevalence", overall.get("prevalence")),
                         ("AUROC (DeLong)", overall.get("auroc")),
                         ("AUPRC", overall.get("auprc")), ("Brier score", overall.get("brier")),
                         ("calibration intercept", calibration.get("intercept", calibration)),
                         ("calibration slope", calibration.get("slope", calibration))):
        if entry is not None:
            rows.append({"figure": label, **_interval(entry)})
    return rows


def threshold_rows(figures: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for t in figures.get("thresholds") or []:
        row = {"threshold": exact(t.get("threshold"))}
        for name in ("sensitivity", "specificity", "ppv", "npv"):
            row[name] = exact((t.get(name) or {}).get("value"))
        row["net benefit"] = exact(t.get("net_benefit"))
        row["treat all"] = exact(t.get("net_benefit_treat_all"))
        row["counts"] = exact(t.get("counts") or {})
        rows.append(row)
    return rows


def subgroup_rows(figures: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for s in figures.get("subgroups") or []:
        row = {"subgroup": f"{s.get('attribute')}: {s.get('level')}"}
        if s.get("suppressed"):
            row.update(cases="suppressed", prevalence="", auroc="", brier="",
                       note=str(s.get("reason") or ""))
        else:
            row.update(cases=exact(s.get("n")),
                       prevalence=exact((s.get("prevalence") or {}).get("value")),
                       auroc=exact((s.get("auroc") or {}).get("value")),
                       brier=exact((s.get("brier") or {}).get("value")), note="")
        rows.append(row)
    return rows


def provenance_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    run, task = report.get("run") or {}, report.get("task") or {}
    model, release = report.get("model") or {}, report.get("release") or {}
    receipt = report.get("receipt") or {}
    return [{"field": k, "value": exact(v)} for k, v in (
        ("run", run.get("id")), ("kind", run.get("kind")),
        ("task", f"{task.get('id')} v{task.get('version')}"),
        ("task protocol hash", task.get("protocol_hash")),
        ("dataset release", f"{release.get('dataset')} {release.get('version')}"),
        ("model", f"{model.get('name')} {model.get('version')}"),
        ("model SHA-256", model.get("sha256")), ("intended use", model.get("intended_use")),
        ("training data", model.get("training_data")),
        ("code version", report.get("code_version")), ("generated", report.get("generated_at")),
        ("receipt", f"{receipt.get('algorithm', 'unsigned')} key {receipt.get('key_id', '—')}"),
    )]
