"""The differential-privacy budget in the UI: a gauge (workspace and home), and before running,
what a query will cost and how precise it will be. Data comes from the services
(:func:`portal.services.query.query_budget`, :func:`portal.services.query.preview_query`);
the text helpers are plain functions, tested without Streamlit."""

from __future__ import annotations

from typing import Any

import streamlit as st

from portal.errors import PortalError
from portal.identity import Principal
from portal.services import query
from portal.services.context import Context
from portal.ui.errors import show_error

PREVIEW_KEY = "dp_preview"


def gauge_text(privacy: dict[str, Any]) -> str:
    """One sentence: what is spent and left of the team's privacy budget."""
    return (f"Privacy budget: ρ {privacy['spent_rho']:g} of {privacy['budget_rho']:g} spent, "
            f"{privacy['queries_left']} queries left at ρ {privacy['rho_per_query']:g} each "
            f"(ε ≈ {privacy['epsilon_spent']:.1f} of {privacy['epsilon_budget']:.1f} at "
            f"δ = {privacy['delta']:g}). Identical queries replay free.")


def gauge_fraction(privacy: dict[str, Any]) -> float:
    """Share of the budget spent, 0..1."""
    budget = privacy["budget_rho"] or 1.0
    return max(0.0, min(1.0, privacy["spent_rho"] / budget))


def preview_text(preview: dict[str, Any]) -> str:
    """What running the previewed query will cost."""
    if preview.get("cached"):
        return "This exact query was already answered: running it again costs nothing."
    if not preview.get("columns"):
        return "This query reads no personal table: it is answered exactly, at no cost."
    groups = {"public": "every value of the group keys is shown",
              "selected": f"groups with fewer than about {preview.get('selection_threshold')} "
                          "persons are not shown"}.get(preview.get("groups"), "")
    return (f"Running this query costs ρ {preview['cost_rho']:g} "
            f"({preview['budget']['queries_left']} queries left); {groups}.")


def precision_rows(preview: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per aggregate column: its expected 95% half-width."""
    rows = []
    for column in preview.get("columns", []):
        where = (f" (at a group of {column['at_values']} values)"
                 if column.get("at_values") else "")
        rows.append({"column": column["column"], "kind": column["kind"],
                     "± (95%)": round(column["half_width"], 2), "note": where.strip()})
    return rows


def gauge(privacy: dict[str, Any]) -> None:
    st.progress(gauge_fraction(privacy), text=gauge_text(privacy))


def panel(ctx: Context, me: Principal, dataset_id: str, sql: str) -> None:
    """The workspace's budget gauge and the cost check of the query in the editor (DP tiers
    only; nothing shown otherwise)."""
    privacy = query.privacy_status(ctx, me, dataset_id)
    if not privacy:
        return  # no budget kept here (or no active grant: the run itself says why)
    gauge(privacy)
    if st.button("Check cost and precision", key="dp_check",
                 help="What this query will cost and how precise each column will be. "
                      "Nothing runs and nothing is charged."):
        try:
            st.session_state[PREVIEW_KEY] = (me.user_id, dataset_id, sql,
                                              query.preview_query(ctx, me, dataset_id, sql))
        except PortalError as exc:
            st.session_state.pop(PREVIEW_KEY, None)
            show_error(exc)
    kept = st.session_state.get(PREVIEW_KEY)
    if kept and kept[:3] == (me.user_id, dataset_id, sql):
        st.info(preview_text(kept[3]))
        rows = precision_rows(kept[3])
        if rows:
            st.dataframe(rows, hide_index=True, width="stretch")


def home_gauges(ctx: Context, me: Principal, grants: list[dict]) -> None:
    """A gauge per dataset whose granted tier keeps a privacy budget."""
    shown = False
    for dataset_id in sorted({g["dataset_id"] for g in grants
                              if g.get("effective_status", "active") == "active"}):
        privacy = query.privacy_status(ctx, me, dataset_id)
        if privacy:
            if not shown:
                st.header("Privacy budgets")
                shown = True
            st.caption(dataset_id)
            gauge(privacy)
