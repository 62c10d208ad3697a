"""A validation report in the portal, drawn as the HTML report draws it: the same SVG plots
(axes, diagonal and prevalence baselines, suppressed calibration bins shaded with a note, a
subgroup forest plot with each level's size and prevalence) and every figure once, at one
precision (:data:`DIGITS`)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from portal.ui.text import md_escape
from sandbox import report as reports

DIGITS = 3


def fmt(value: Any) -> str:
    """A figure at the portal's one precision (``—`` when absent)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{DIGITS}f}"
    return str(value)


def interval(entry: dict[str, Any] | None) -> str:
    """``value (lower–upper)``, or why it is not estimable."""
    if not entry or entry.get("value") is None:
        reason = (entry or {}).get("not_estimable")
        return f"not estimable ({reason})" if reason else "not estimable"
    if entry.get("lower") is None:
        return fmt(entry["value"])
    return f"{fmt(entry['value'])} ({fmt(entry['lower'])}–{fmt(entry['upper'])})"


def overall_rows(overall: dict[str, Any]) -> list[dict[str, str]]:
    calibration = overall.get("calibration", {})
    return [
        {"figure": "Cases", "value (95% CI)": fmt(overall["n"])},
        {"figure": "With the outcome", "value (95% CI)": fmt(overall["positives"])},
        {"figure": "Prevalence", "value (95% CI)": interval(overall["prevalence"])},
        {"figure": "AUROC (DeLong)", "value (95% CI)": interval(overall["auroc"])},
        {"figure": "AUPRC (average precision)", "value (95% CI)": interval(overall["auprc"])},
        {"figure": "Brier score", "value (95% CI)": interval(overall["brier"])},
        {"figure": "Calibration intercept",
         "value (95% CI)": interval(calibration.get("intercept", calibration))},
        {"figure": "Calibration slope",
         "value (95% CI)": interval(calibration.get("slope", calibration))},
    ]


def threshold_rows(figures: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for t in figures["thresholds"]:
        if t.get("suppressed"):
            rows.append({"threshold": f"{t['threshold']:g}",
                         "sensitivity": t.get("reason", "suppressed"), "specificity": "—",
                         "PPV": "—", "NPV": "—", "net benefit": "—", "treat all": "—"})
            continue
        rows.append({"threshold": f"{t['threshold']:g}",
                     "sensitivity": interval(t["sensitivity"]),
                     "specificity": interval(t["specificity"]), "PPV": interval(t["ppv"]),
                     "NPV": interval(t["npv"]), "net benefit": fmt(t["net_benefit"]),
                     "treat all": fmt(t["net_benefit_treat_all"])})
    return rows


def subgroup_rows(figures: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for s in figures["subgroups"]:
        name = f"{s['attribute']}: {s['level']}"
        if s.get("suppressed"):
            rows.append({"subgroup": name, "cases": "suppressed", "prevalence": "—",
                         "AUROC": s.get("reason", "suppressed"), "Brier": "—"})
        else:
            rows.append({"subgroup": name, "cases": fmt(s["n"]),
                         "prevalence": interval(s["prevalence"]), "AUROC": interval(s["auroc"]),
                         "Brier": interval(s["brier"])})
    return rows


def released_section(report: dict[str, Any]) -> None:
    """What a released report is: the primary metric and its source, the Ladder, the budget
    of final reports and the rule that released the figures."""
    primary, ladder = report["primary"], report["ladder"]
    budget, rule = report["budget"], report["disclosure"]
    m1, m2, m3 = st.columns(3)
    m1.metric(f"{primary['metric'].upper()} ({primary.get('source', 'released')})",
              interval(primary))
    m2.metric("Ladder best", fmt(ladder["best"]),
              "improved" if ladder["improved"] else "unchanged", delta_color="off")
    m3.metric("Final reports used",
              f"{budget['final_reports_used']} / {budget['final_reports_limit']}")
    st.caption(rule["mechanism"])


def show_report(report: dict[str, Any]) -> None:
    """Render a report (as the viewer may see it: exact for staff, released for teams):
    provenance, overall figures, the plots, decision thresholds and subgroups."""
    figures, task = report["metrics"], report["task"]
    if report.get("view") == "released":
        released_section(report)
    if figures is None:
        st.info("Not a final submission: only the primary metric, as your team's Ladder shows "
                "it, is released. A final submission shows the full report.")
        return
    for message in figures["messages"]:
        st.warning(message)
    receipt = report.get("receipt") or {}
    st.caption(md_escape(
        f"{'Exact report (staff)' if report.get('view') != 'released' else 'Released report'}"
        f" · release {report['release']['dataset']} {report['release']['version']} · task "
        f"{task['id']} v{task['version']} · protocol {task['protocol_hash'][:16]}… · model "
        f"{report['model']['name']} {report['model']['version']} "
        f"({report['model']['sha256'][:16]}…) · code {report['code_version']} · "
        f"{report['generated_at']} · receipt {receipt.get('algorithm', 'unsigned')} key "
        f"{receipt.get('key_id', '—')}"))
    st.subheader("Overall")
    st.dataframe(pd.DataFrame(overall_rows(figures["overall"])), hide_index=True)
    drawn = reports.plots(report)
    p1, p2, p3 = st.columns(3)
    p1.image(drawn["roc"], caption="ROC curve; dashed: chance")
    p2.image(drawn["pr"], caption="Precision-recall; dashed: prevalence")
    p3.image(drawn["calibration"], caption="Calibration; dashed: perfect calibration")
    st.subheader("At decision thresholds")
    st.dataframe(pd.DataFrame(threshold_rows(figures)), hide_index=True)
    st.subheader("Subgroups")
    st.caption(f"Subgroups with fewer than {task['min_subgroup_size']} cases are suppressed.")
    if figures["subgroups"]:
        st.image(drawn["forest"], caption="AUROC by subgroup; dashed: overall AUROC")
        st.dataframe(pd.DataFrame(subgroup_rows(figures)), hide_index=True)
    else:
        st.text("This task reports no subgroups.")
