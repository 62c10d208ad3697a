"""Validation reports: the versioned JSON document and its HTML rendering.

The JSON schema is documented in ``docs/report-schema.md`` (``schema_version`` changes with any
incompatible change). The HTML is self-contained: plots are inline SVG drawn here (ROC,
precision-recall, calibration, subgroup forest plot); every text is escaped.
"""

from __future__ import annotations

import html
from typing import Any

SCHEMA = "accelerator-portal/validation-report"
SCHEMA_VERSION = 1
W, H, PAD = 320, 260, 40


def build(*, run: dict[str, Any], model: dict[str, Any], release: dict[str, Any],
          task: dict[str, Any], data: dict[str, Any], scoring: dict[str, Any],
          figures: dict[str, Any], code_version: str, generated_at: str) -> dict[str, Any]:
    """The report body (without receipt). ``figures`` is ``sandbox.metrics.compute`` output."""
    primary_metric = task["primary_metric"]
    primary = figures["overall"].get(primary_metric, {})
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "run": run, "model": model, "release": release, "task": task, "data": data,
        "scoring": scoring, "code_version": code_version, "generated_at": generated_at,
        "primary": {"metric": primary_metric, "value": primary.get("value"),
                    "lower": primary.get("lower"), "upper": primary.get("upper")},
        "metrics": figures,
    }


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _sx(x: float) -> float:
    return PAD + x * (W - 2 * PAD)


def _sy(y: float) -> float:
    return H - PAD - y * (H - 2 * PAD)


def _frame(title: str, xlabel: str, ylabel: str, body: str) -> str:
    ticks = "".join(
        f'<text x="{_sx(t):.1f}" y="{H - PAD + 14}" font-size="9" text-anchor="middle">{t:g}'
        f'</text><text x="{PAD - 6}" y="{_sy(t) + 3:.1f}" font-size="9" text-anchor="end">'
        f'{t:g}</text>' for t in (0, 0.5, 1))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" '
            f'aria-label="{html.escape(title)}"><title>{html.escape(title)}</title>'
            f'<rect x="{PAD}" y="{PAD}" width="{W - 2 * PAD}" height="{H - 2 * PAD}" '
            f'fill="none" stroke="#999"/>{ticks}'
            f'<text x="{W / 2}" y="18" font-size="12" text-anchor="middle">{html.escape(title)}'
            f'</text><text x="{W / 2}" y="{H - 8}" font-size="10" text-anchor="middle">'
            f'{html.escape(xlabel)}</text><text x="12" y="{H / 2}" font-size="10" '
            f'transform="rotate(-90 12 {H / 2})" text-anchor="middle">{html.escape(ylabel)}'
            f'</text>{body}</svg>')


def _polyline(xs: list[float], ys: list[float], colour: str, dash: str = "") -> str:
    points = " ".join(f"{_sx(x):.1f},{_sy(y):.1f}" for x, y in zip(xs, ys, strict=True))
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"{extra}/>'


def roc_svg(figures: dict[str, Any]) -> str:
    curve = figures.get("curves", {}).get("roc")
    body = _polyline([0, 1], [0, 1], "#bbb", "4 3")
    if curve:
        body += _polyline(curve["x"], curve["y"], "#1f5fa8")
    return _frame("ROC curve", "1 − specificity", "sensitivity", body)


def pr_svg(figures: dict[str, Any]) -> str:
    curve = figures.get("curves", {}).get("pr")
    prevalence = figures["overall"]["prevalence"]["value"] or 0.0
    body = _polyline([0, 1], [prevalence, prevalence], "#bbb", "4 3")
    if curve:
        body += _polyline(curve["x"], curve["y"], "#1f5fa8")
    return _frame("Precision-recall curve", "recall", "precision", body)


def calibration_svg(figures: dict[str, Any], min_size: int | None = None) -> str:
    """Observed rate against mean predicted risk per bin (Wilson 95% bars), the diagonal of
    perfect calibration, and suppressed bins shaded grey with a note saying why."""
    body = _polyline([0, 1], [0, 1], "#bbb", "4 3")
    suppressed = [p for p in figures.get("reliability", []) if p.get("suppressed")]
    for point in suppressed:
        x0, x1 = _sx(point["bin_lower"]), _sx(point["bin_upper"])
        body += (f'<rect x="{x0:.1f}" y="{PAD}" width="{x1 - x0:.1f}" height="{H - 2 * PAD}" '
                 f'fill="#ddd" opacity="0.6"><title>suppressed bin</title></rect>')
    for point in figures.get("reliability", []):
        if point.get("suppressed"):
            continue
        x, y = point["mean_predicted"], point["observed"]
        body += (f'<line x1="{_sx(x):.1f}" x2="{_sx(x):.1f}" y1="{_sy(point["lower"]):.1f}" '
                 f'y2="{_sy(point["upper"]):.1f}" stroke="#1f5fa8"/>'
                 f'<circle cx="{_sx(x):.1f}" cy="{_sy(y):.1f}" r="3" fill="#1f5fa8"/>')
    if suppressed:
        fewer = f"fewer than {min_size} cases" if min_size else "too few cases"
        body += (f'<text x="{PAD + 4}" y="{PAD + 12}" font-size="9" fill="#555">'
                 f'{suppression_note(len(suppressed), fewer)}</text>')
    return _frame("Calibration (reliability)", "mean predicted risk", "observed rate", body)


def suppression_note(bins: int, why: str) -> str:
    """The note on the calibration plot when bins are suppressed."""
    return html.escape(f"grey: {bins} bin{'s' if bins != 1 else ''} suppressed ({why})")


def forest_svg(figures: dict[str, Any]) -> str:
    """AUROC with its 95% interval per subgroup level, with each level's size and prevalence;
    the dashed line is the overall AUROC; suppressed levels are listed as such."""
    rows = figures.get("subgroups", [])
    height = 50 + 20 * max(len(rows), 1)
    left, right = 170, W + 80
    span = right - left
    text_x = right + 12

    def sx(v: float) -> float:
        return left + (v - 0.4) / 0.6 * span if v >= 0.4 else left

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{text_x + 150}" '
             f'height="{height}" role="img" aria-label="Subgroup AUROC">'
             f'<title>Subgroup AUROC (95% CI)</title>'
             f'<text x="{left}" y="16" font-size="12">AUROC by subgroup (95% CI; axis 0.4–1)'
             f'</text><text x="{text_x}" y="16" font-size="10">cases · prevalence</text>']
    for tick in (0.4, 0.6, 0.8, 1.0):
        parts.append(f'<text x="{sx(tick):.1f}" y="{height - 2}" font-size="9" '
                     f'text-anchor="middle">{tick:g}</text>')
    overall = figures["overall"]["auroc"].get("value")
    if overall is not None:
        parts.append(f'<line x1="{sx(overall):.1f}" x2="{sx(overall):.1f}" y1="24" '
                     f'y2="{height - 12}" stroke="#bbb" stroke-dasharray="4 3"/>')
    for i, row in enumerate(rows):
        y = 40 + 20 * i
        label = html.escape(f"{row['attribute']}: {row['level']}"[:28])
        parts.append(f'<text x="4" y="{y + 4}" font-size="10">{label}</text>')
        if row.get("suppressed"):
            parts.append(f'<text x="{left}" y="{y + 4}" font-size="10" fill="#777">'
                         f'suppressed</text><text x="{text_x}" y="{y + 4}" font-size="10" '
                         f'fill="#777">{html.escape(row.get("reason", ""))[:40]}</text>')
            continue
        prevalence = (row.get("prevalence") or {}).get("value")
        parts.append(f'<text x="{text_x}" y="{y + 4}" font-size="10">{_fmt(row.get("n"))} · '
                     f'{_fmt(prevalence)}</text>')
        auroc = row.get("auroc") or {}
        if auroc.get("value") is None:
            parts.append(f'<text x="{left}" y="{y + 4}" font-size="10" fill="#777">'
                         f'not estimable</text>')
            continue
        parts.append(f'<line x1="{sx(auroc["lower"]):.1f}" x2="{sx(auroc["upper"]):.1f}" '
                     f'y1="{y}" y2="{y}" stroke="#1f5fa8" stroke-width="1.5"/>'
                     f'<rect x="{sx(auroc["value"]) - 3:.1f}" y="{y - 3}" width="6" height="6" '
                     f'fill="#1f5fa8"/>')
    parts.append("</svg>")
    return "".join(parts)


def plots(report: dict[str, Any]) -> dict[str, str]:
    """The report's figures as SVG, by name: the HTML report and the portal draw the same."""
    figures = report["metrics"]
    return {"roc": roc_svg(figures), "pr": pr_svg(figures),
            "calibration": calibration_svg(figures, report["task"].get("min_subgroup_size")),
            "forest": forest_svg(figures)}


def _interval(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        reason = (entry or {}).get("not_estimable")
        return f"— ({html.escape(reason)})" if reason else "—"
    if entry.get("lower") is None:
        return _fmt(entry["value"])
    return f"{_fmt(entry['value'])} ({_fmt(entry['lower'])}–{_fmt(entry['upper'])})"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _overall_rows(overall: dict[str, Any]) -> list[list[str]]:
    calibration = overall.get("calibration", {})
    return [
        ["Cases", _fmt(overall["n"])], ["Positives", _fmt(overall["positives"])],
        ["Prevalence", _interval(overall["prevalence"])],
        ["AUROC (DeLong 95% CI)", _interval(overall["auroc"])],
        ["AUPRC (average precision)", _interval(overall["auprc"])],
        ["Brier score", _interval(overall["brier"])],
        ["Calibration intercept", _interval(calibration.get("intercept", calibration))],
        ["Calibration slope", _interval(calibration.get("slope", calibration))],
    ]


def _threshold_rows(figures: dict[str, Any]) -> list[list[str]]:
    rows = []
    for t in figures["thresholds"]:
        if t.get("suppressed"):
            rows.append([_fmt(t["threshold"], 2), html.escape(t["reason"]), "", "", "", "", ""])
            continue
        rows.append([_fmt(t["threshold"], 2), _interval(t["sensitivity"]),
                     _interval(t["specificity"]), _interval(t["ppv"]), _interval(t["npv"]),
                     _fmt(t["net_benefit"]), _fmt(t["net_benefit_treat_all"])])
    return rows


def _subgroup_rows(figures: dict[str, Any]) -> list[list[str]]:
    rows = []
    for s in figures["subgroups"]:
        name = html.escape(f"{s['attribute']}: {s['level']}")
        if s.get("suppressed"):
            rows.append([name, html.escape(s["reason"]), "", "", ""])
        else:
            rows.append([name, _fmt(s["n"]), _interval(s["prevalence"]), _interval(s["auroc"]),
                         _interval(s["brier"])])
    return rows


STYLE = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
         "padding:3px 8px;font-size:13px;text-align:left}.plots svg{margin:4px}"
         "code{font-size:12px;word-break:break-all}")


def _release_section(report: dict[str, Any]) -> str:
    """What the team's view is (a released report only): the Ladder, the budget, the rule."""
    if report.get("view") != "released":
        return ""
    ladder, budget, rule = report["ladder"], report["budget"], report["disclosure"]
    primary = report["primary"]
    rows = [["Primary metric", f"{_fmt(primary['metric'])} {_interval(primary)} "
                               f"({_fmt(primary.get('source'))})"],
            ["Ladder best", f"{_fmt(ladder['best'])} ({'improved' if ladder['improved'] else 'unchanged'}"  # noqa: E501
                            f" by this submission; margin {_fmt(ladder['margin'])})"],
            ["Final reports used", f"{_fmt(budget['final_reports_used'])} of "
                                   f"{_fmt(budget['final_reports_limit'])}"],
            ["Released figures", html.escape(rule["mechanism"])],
            ["At most", f"{_fmt(rule['max_bits'], 1)} bits about the labels"]]
    return f"<h2>Released figures</h2>{_table(['', ''], rows)}"


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page for a report, exact or released (all values escaped; plots
    inline SVG)."""
    figures, run, task = report["metrics"], report["run"], report["task"]
    model, release = report["model"], report["release"]
    receipt = report.get("receipt", {})
    messages = "".join(f"<p><strong>{html.escape(m)}</strong></p>"
                       for m in (figures or {}).get("messages", []))
    provenance = [
        ["Run", _fmt(run["id"])], ["Kind", _fmt(run["kind"])],
        ["Task", _fmt(f"{task['id']} v{task['version']}")],
        ["Task protocol hash", f"<code>{_fmt(task['protocol_hash'])}</code>"],
        ["Dataset release", _fmt(f"{release['dataset']} {release['version']}")],
        ["Model", _fmt(f"{model['name']} {model['version']}")],
        ["Model SHA-256", f"<code>{_fmt(model['sha256'])}</code>"],
        ["Intended use", _fmt(model.get("intended_use"))],
        ["Training data", _fmt(model.get("training_data"))],
        ["Code version", _fmt(report["code_version"])],
        ["Generated", _fmt(report["generated_at"])],
        ["Receipt", _fmt(f"{receipt.get('algorithm', 'unsigned')} key "
                         f"{receipt.get('key_id', '—')}")],
    ]
    head = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>Validation report — run {_fmt(run['id'])}</title><style>{STYLE}</style>"
            f"</head><body><h1>Validation report: {_fmt(task['title'])}</h1>"
            f"<p>{_fmt(task['question'])}</p>{messages}{_release_section(report)}"
            f"<h2>Provenance</h2>{_table(['', ''], provenance)}")
    if figures is None:  # a released non-final report: the Ladder's figure only
        return (f"{head}<p>This was not a final submission: only the primary metric, as the "
                f"team's Ladder shows it, is released.</p></body></html>")
    drawn = plots(report)
    curves = drawn["roc"] + drawn["pr"] + drawn["calibration"]
    return (
        f"{head}"
        f"<h2>Overall</h2>{_table(['Figure', 'Value (95% CI)'], _overall_rows(figures['overall']))}"
        f"<div class='plots'>{curves}</div>"
        f"<h2>At decision thresholds</h2>"
        f"{_table(['Threshold', 'Sensitivity', 'Specificity', 'PPV', 'NPV', 'Net benefit', 'Treat all'], _threshold_rows(figures))}"  # noqa: E501
        f"<h2>Subgroups</h2><p>Subgroups with fewer than {_fmt(task['min_subgroup_size'])} "
        f"cases are suppressed.</p><div class='plots'>{drawn['forest']}</div>"
        f"{_table(['Subgroup', 'Cases', 'Prevalence', 'AUROC', 'Brier'], _subgroup_rows(figures))}"
        f"</body></html>")
