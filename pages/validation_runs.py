"""Validation runs (staff): every run, review (release or withhold with a reason), re-run the
latest released models on a new release."""

import pandas as pd
import streamlit as st

from portal.errors import PortalError
from portal.services import sandbox
from portal.ui import runs as runs_ui
from portal.ui import widgets
from portal.ui.errors import or_stop, show_error
from portal.ui.session import require_principal
from portal.ui.text import md_escape

me, ctx = require_principal("staff", page="validation-runs")
st.title("Validation runs")
widgets.show_flash()

STATUSES = ["awaiting_review", "queued", "running", "completed", "released", "withheld",
            "failed", "all"]
status = st.selectbox("Show", STATUSES, format_func=lambda s: s.replace("_", " "),
                      key="vr_status")
runs = or_stop(lambda: sandbox.list_runs(ctx, me, status=None if status == "all" else status))
if not runs:
    st.text("No runs.")
else:
    frame = pd.DataFrame(runs)[["id", "kind", "task", "team", "status", "outcome", "model",
                                "release_version", "primary_value", "created_at"]]
    frame["page"] = [f"run?id={r['id']}" for r in runs]
    st.dataframe(frame, hide_index=True, width="stretch", column_config={
        "primary_value": st.column_config.NumberColumn("primary", format="%.3f"),
        "page": st.column_config.LinkColumn("page", display_text="open")})

reviewable = [r["id"] for r in runs if r["status"] in ("awaiting_review", "withheld")]
st.header("Review")
if not reviewable:
    st.info("Nothing awaits review.")
else:
    run_id = st.selectbox("Run", reviewable, key="vr_run")
    current = next(r for r in runs if r["id"] == run_id)
    st.caption(md_escape(f"Task {current['task']} v{current['task_version']} · team "
                         f"{current['team']} · model {current['model']} · release "
                         f"{current['release_version']}"))
    runs_ui.link(run_id, f"Open run {run_id}: the full report, plots and exports")
    if st.button("Release to the team", type="primary", key="vr_release"):
        try:
            sandbox.release_run(ctx, me, run_id)
            widgets.flash(f"Run {run_id} released to its team.")
        except PortalError as exc:
            show_error(exc)
    with st.form("vr_withhold_form"):
        reason = st.text_area("Reason for withholding (the team sees it)", key="vr_reason")
        if st.form_submit_button("Withhold"):
            try:
                sandbox.withhold_run(ctx, me, run_id, reason)
                widgets.flash(f"Run {run_id} withheld.")
            except PortalError as exc:
                show_error(exc)

st.header("Re-run on the current release")
cards = or_stop(lambda: sandbox.tasks(ctx))
task_id = st.selectbox("Task", list(cards), key="vr_rerun_task")
if st.button("Re-run every team's latest released model", key="vr_rerun"):
    try:
        ids = sandbox.rerun_latest(ctx, me, task_id)
        widgets.flash(f"Queued {len(ids)} run(s): {', '.join(map(str, ids)) or 'none'}.")
    except PortalError as exc:
        show_error(exc)
