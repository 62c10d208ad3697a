"""What a member of staff reads before releasing a validation report: the run's disclosure
checks and flags, then the whole report with exact figures (rendering only; the rows come from
:mod:`portal.ui.review_checks`). Texts from the report go through grids or are escaped."""

from __future__ import annotations

from typing import Any

import streamlit as st

from portal.ui.review_checks import (
    ReviewCheck,
    check_rows,
    overall_rows,
    provenance_rows,
    review_checks,
    subgroup_rows,
    threshold_rows,
)
from portal.ui.text import md_escape


def checks(run: dict[str, Any], report: dict[str, Any] | None) -> list[ReviewCheck]:
    """The checks the run records, flagged ones first and called out; returns them."""
    found = review_checks(run, report)
    st.subheader("Disclosure checks")
    if not found:
        st.caption("This run records no disclosure checks or flags.")
        return found
    flagged = [c for c in found if c.flagged]
    if flagged:
        st.error(f"{len(flagged)} check(s) flagged this run: "
                 + md_escape(", ".join(c.name for c in flagged))
                 + ". Read them before releasing the report.", icon=":material/flag:")
    else:
        st.success(f"All {len(found)} recorded check(s) passed.")
    st.dataframe(check_rows(found), hide_index=True, width="stretch")
    return found


def full_report(report: dict[str, Any]) -> None:
    """Every part of the report, figures exact (staff review; teams see the released one)."""
    figures = report.get("metrics") or {}
    st.subheader("Report")
    for message in figures.get("messages") or []:
        st.info(md_escape(message))
    overall, provenance = st.tabs(["Overall", "Provenance"])
    with overall:
        st.dataframe(overall_rows(figures), hide_index=True, width="stretch")
    with provenance:
        st.dataframe(provenance_rows(report), hide_index=True, width="stretch")
    st.caption("At decision thresholds")
    st.dataframe(threshold_rows(figures), hide_index=True, width="stretch")
    task = report.get("task") or {}
    st.caption(f"Subgroups (levels with fewer than {task.get('min_subgroup_size', '?')} cases "
               "are suppressed in the team's report)")
    st.dataframe(subgroup_rows(figures), hide_index=True, width="stretch")
