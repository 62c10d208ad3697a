"""Validation runs (staff): every run, review (the run's disclosure checks and the full report,
then release or withhold with a reason), re-run the latest released models on a new release
(after a confirmation)."""

import pandas as pd
import streamlit as st

from portal.errors import PortalError
from portal.services import sandbox
from portal.ui import confirm, run_review, widgets
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
    st.dataframe(pd.DataFrame(runs)[["id", "kind", "task", "team", "status", "flagged",
                                     "final", "outcome", "model", "release_version",
                                     "primary_value", "released_primary", "created_at"]],
                 hide_index=True, width="stretch")
    st.caption("primary_value is exact (staff only); released_primary is what the team sees.")

reviewable = [r["id"] for r in runs if r["status"] in ("awaiting_review", "withheld")]
st.header("Review")
if not reviewable:
    st.info("Nothing awaits review.")
else:
    run_id = st.selectbox("Run", reviewable, key="vr_run")
    current = next(r for r in runs if r["id"] == run_id)
    st.caption(f"Task {current['task']} v{current['task_version']} · team {current['team']} · "
               f"model {current['model']} · release {current['release_version']}")
    report = sandbox.staff_report(ctx, me, run_id) if current["report_available"] else None
    flags = [c.name for c in run_review.checks(current, report) if c.flagged]
    if report is not None:
        primary = report["primary"]
        if primary["value"] is not None:
            st.metric(f"{primary['metric'].upper()} (exact)", f"{primary['value']:.3f}")
        st.caption("Final submission: the team will see the full released report."
                   if current["final"] else
                   "Not final: the team will see the Ladder figure only.")
        run_review.full_report(report)
        st.download_button("Download exact report (HTML)",
                           sandbox.staff_report(ctx, me, run_id, "html"),
                           file_name=f"validation-run-{run_id}-exact.html", mime="text/html")
    # A run a check flagged is released only on a second, explicit click that names the flags.
    release = confirm.button(
        "Release to the team", "vr_release", run_id,
        f"Release run {run_id}'s report although {md_escape(', '.join(flags))} flagged it? "
        "This is the staff decision on the flag; it is audited.",
        "Confirm: release despite the flags", type="primary") if flags else st.button(
        "Release to the team", type="primary", key="vr_release")
    if release:
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
if confirm.button("Re-run every team's latest released model", "vr_rerun", task_id,
                  f"Queue a new run of every team's latest released model on task "
                  f"**{md_escape(task_id)}** against the current release? Each re-run is "
                  "scored and reviewed by the same rules as a team's own submission.",
                  "Confirm: queue the re-runs"):
    try:
        ids = sandbox.rerun_latest(ctx, me, task_id)
        widgets.flash(f"Queued {len(ids)} run(s): {', '.join(map(str, ids)) or 'none'}.")
    except PortalError as exc:
        show_error(exc)
