"""Sections of the Catalog page (rendering only). Dataset-supplied text is escaped or shown in
non-markdown elements."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from portal.policy.model import DatasetPolicy
from portal.ui import deid_report
from portal.ui.text import md_escape


def header(card: dict) -> None:
    st.header(md_escape(card.get("title") or card["id"]))
    st.markdown(md_escape(card.get("description") or ""))
    release = card.get("release") or {}
    persons = (release.get("persons") or {}).get("dev")
    cols = st.columns(4)
    cols[0].metric("Release", release.get("version") or "none")
    cols[1].metric("Persons (queryable)", f"{persons:,}" if persons else "—")
    cols[2].metric("Tables", len(card.get("tables") or []))
    rows = sum(t.get("dev_rows") or 0 for t in card.get("tables") or [])
    cols[3].metric("Rows (queryable)", f"{rows:,}")
    if card.get("report"):
        split_table(card["report"])
    provenance = card.get("provenance") or {}
    with st.expander("Provenance and licence"):
        st.dataframe([{"field": k, "value": str(v)} for k, v in provenance.items()]
                     + [{"field": "standard", "value": str(card.get("standard") or "")},
                        {"field": "built", "value": str(release.get("built_at") or "")}],
                     hide_index=True, width="stretch")
        if card.get("terms"):
            st.caption("Terms of use")
            st.text(card["terms"])


def tables(card: dict) -> None:
    listed = card.get("tables") or []
    st.dataframe([{"table": t["name"], "rows": t.get("dev_rows"),
                   "columns": len(t.get("columns", [])), "description": t.get("description", "")}
                  for t in listed], hide_index=True, width="stretch")
    by_name = {t["name"]: t for t in listed}
    name = st.selectbox("Columns of table", list(by_name), key="catalog_table")
    if name is None:
        return
    table = by_name[name]
    st.dataframe([{"column": c["name"], "type": c.get("type", ""),
                   "classification": c.get("classification", ""),
                   "description": c.get("description", "")}
                  for c in table.get("columns", [])], hide_index=True, width="stretch")
    dropped = table.get("dropped_columns") or []
    if dropped:
        st.caption("Not released: " + md_escape(", ".join(d["name"] for d in dropped)))


def split_table(rpt: dict) -> None:
    """Persons and rows: dev (queryable), held out (validation only), suppressed."""
    parts = deid_report.split(rpt)
    st.dataframe([{"split": what, "dev (queryable)": parts[key]["dev"],
                   "held out (validation only)": parts[key]["holdout"],
                   "suppressed (k-anonymity)": parts[key]["suppressed"]}
                  for key, what in (("persons", "persons"), ("rows", "rows"))],
                 hide_index=True, width="content")


def report(card: dict) -> None:
    rpt = card.get("report") or {}
    if not rpt:
        st.info("No release yet, so no de-identification report.")
        return
    demographics_chart(card.get("demographics") or {})
    report_sections(rpt)


def report_sections(rpt: dict) -> None:
    """The de-identification report as formatted sections: our own titles and sentences (the
    dataset's names in them escaped), tables as grids of text."""
    boxes = {"ok": st.success, "problem": st.error, "info": st.markdown}
    for section in deid_report.sections(rpt):
        st.subheader(section.title)
        lines = [md_escape(line) for line in section.lines]
        if lines:
            boxes[section.level](lines[0])
        if lines[1:]:
            st.markdown("\n".join(f"- {line}" for line in lines[1:]))
        if section.rows:
            st.dataframe(section.rows, hide_index=True, width="stretch")


def demographics_chart(demo: dict) -> None:
    if not demo.get("available"):
        st.caption("No age and sex chart for this dataset.")
        return
    cells = demo.get("cells") or []
    frame = pd.DataFrame([c for c in cells if c.get("persons") is not None])
    hidden = sum(1 for c in cells if c.get("persons") is None)
    st.subheader("Persons by age band and sex")
    if not frame.empty:
        st.bar_chart(frame, x="age_band", y="persons", color="sex", stack=False)
    st.caption(f"Ages at {md_escape(demo.get('reference_date'))}. Cells with fewer than "
               f"{demo.get('small_cell_threshold', 11)} persons are suppressed ({hidden} "
               "suppressed here).")


def results_label(tier: Any) -> str:
    """What a tier's results are, as the catalog says it (suppression mode is labelled as not
    safe against differencing)."""
    if tier.result_mode == "rows":
        return "rows"
    if tier.disclosure == "dp":
        return (f"differentially private aggregates: each query costs ρ "
                f"{tier.dp.rho_per_query:g} of a team budget of ρ {tier.dp.budget_rho:g} "
                f"per dataset; estimates shown with their 95% margin")
    return (f"exact aggregates, not safe against differencing (groups under "
            f"{tier.min_persons} persons suppressed)")


def tiers(policy: DatasetPolicy | None) -> None:
    if policy is None:
        st.info("No access tiers are defined for this dataset yet.")
        return
    for name, tier in policy.tiers.items():
        with st.container(border=True):
            st.subheader(md_escape(name))
            st.text(tier.description)
            rules = tier.request
            st.dataframe([
                {"what": "results", "allows": results_label(tier)},
                {"what": "rows per result", "allows": f"at most {tier.max_rows:,}"},
                {"what": "download", "allows": tier.download},
                {"what": "longest grant", "allows": f"{tier.max_grant_days} days"},
                {"what": "approvals needed", "allows": str(tier.approvals_required)},
                {"what": "purpose", "allows": f"{rules.purpose_min_chars}–"
                                              f"{rules.purpose_max_chars} characters"},
                {"what": "ethics reference", "allows": "required"
                 if rules.ethics_reference_required else "optional"},
            ], hide_index=True, width="stretch")
