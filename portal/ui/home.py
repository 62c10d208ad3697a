"""The Home page's sections (rendering only; the data comes from the services)."""

from __future__ import annotations

import streamlit as st

from portal.identity import Principal
from portal.services import access, admin, query, sandbox
from portal.services.context import Context
from portal.ui import budget, widgets


def member_summary(ctx: Context, me: Principal, overview: dict) -> None:
    st.header("Active grants")
    widgets.grants_table(overview["grants"])
    budget.home_gauges(ctx, me, overview["grants"])
    st.header("Open requests")
    widgets.requests_table(overview["open_requests"])
    recent_queries(ctx, me)
    recent_runs(ctx, me)


def recent_queries(ctx: Context, me: Principal) -> None:
    st.header("Recent queries")
    history = query.query_history(ctx, me, limit=10)
    if not history:
        st.info("No queries yet. Open the SQL workspace to run one.")
        return
    st.dataframe(history, hide_index=True, width="stretch")


def recent_runs(ctx: Context, me: Principal) -> None:
    st.header("Recent validation runs")
    runs = sandbox.list_runs(ctx, me)[:10]
    if not runs:
        st.info("No validation runs yet. Open the Validation sandbox to submit a model.")
        return
    st.dataframe([{"run": r["id"], "task": r["task"], "model": r["model"],
                   "status": r["status_text"], "result": r["primary_value"],
                   "submitted": r["created_at"]} for r in runs],
                 hide_index=True, width="stretch")


def staff_summary(ctx: Context, me: Principal) -> None:
    queue = access.review_queue(ctx, me)
    every = access.list_grants(ctx, me)
    chain = admin.audit_chain_status(ctx, me)
    awaiting = sandbox.list_runs(ctx, me, status="awaiting_review")
    cols = st.columns(4)
    cols[0].metric("Open requests", len(queue))
    cols[1].metric("Grants expiring within 14 days",
                   sum(g["bucket"] == "expiring_soon" for g in every))
    cols[2].metric("Validation runs to review", len(awaiting))
    cols[3].metric("Audit chain", "verifies" if chain["ok"] else "BROKEN")
    if queue:
        st.header("Waiting for review")
        widgets.requests_table(queue)
