"""Validation sandbox (startup teams): task cards (what the label means, public copies that
overlap the held-out set), upload with a model card, dry run, and the history of runs, each
linked to its own page (live progress, then the report)."""

import pandas as pd
import streamlit as st

from portal.errors import PortalError
from portal.services import sandbox
from portal.ui import runs, widgets
from portal.ui.errors import or_stop, show_error
from portal.ui.session import require_principal
from portal.ui.text import md_escape

me, ctx = require_principal("member", page="sandbox")
st.title("Validation sandbox")
st.caption("Your model is scored on held-out data your team never sees, in isolation; only the "
           "figures come back — after staff review where the task requires it.")
widgets.show_flash()

cards = or_stop(lambda: sandbox.tasks(ctx))
if not cards:
    st.info("No validation tasks are published yet.")
    st.stop()

task_id = st.selectbox("Task", list(cards), format_func=lambda t: f"{cards[t].title} ({t})",
                       key="sb_task")
card = cards[task_id]
summary = sandbox.task_summary(card)
quota = sandbox.quota_status(ctx, me, card)

st.subheader(card.title)
st.text(card.question)
if card.label_meaning:
    st.markdown(f"**Label:** {md_escape(card.label_meaning)}")
for copy in card.public_copies:
    if copy.overlap == "contains_holdout":
        st.warning(f"Public copy overlaps the held-out set: {md_escape(copy.name)} "
                   f"({md_escape(copy.where)}). {md_escape(copy.note)}",
                   icon=":material/warning:")
    else:
        st.caption(md_escape(f"Public copy: {copy.name} ({copy.where}) · "
                             f"{copy.overlap.replace('_', ' ')}. {copy.note}"))
c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("Valid runs today", f"{quota['valid_runs_used']} / {quota['valid_runs_limit']}")
c2.metric("Attempts today", f"{quota['attempts_used']} / {quota['attempts_limit']}")
c3.metric("Dry runs today", f"{quota['dry_runs_used']} / {quota['dry_runs_limit']}")
c4.metric("Final reports (this task version)",
          f"{quota['final_reports_used']} / {quota['final_reports_limit']}")
c5.metric(f"Ladder best ({quota['ladder_metric']})",
          "—" if quota["ladder_best"] is None else f"{quota['ladder_best']:g}")
st.caption("Each submission shows your team's Ladder figure: it changes only when a model beats "
           "your best by the margin. A final submission shows the full report, with figures "
           "rounded and small cells suppressed; the card allows "
           f"{quota['final_reports_limit']} per task version.")
st.caption(f"Dataset {card.dataset} (held-out partition) · task version {card.version} · "
           f"protocol {card.protocol_hash[:16]}… · input '{card.input.name}' float32 "
           f"[N, {card.width}] · primary metric {card.primary_metric} · "
           f"{'staff review before you see results' if card.review_required else 'no review'}"
           f"{' · needs an active grant' if card.grant_required else ''}"
           + (f" · outcome window {card.outcome_window_days} days"
              if card.outcome_window_days else ""))
with st.expander("Features (in order) and the published SQL"):
    st.dataframe(pd.DataFrame(summary["features"]), hide_index=True, width="stretch")
    st.code(f"WITH population AS (\n{card.population_sql})\n, labels AS (\n{card.label_sql})\n"
            f", features AS (\n{card.features.sql})\nSELECT * FROM features", language="sql")
    st.caption("Run this on the dev partition in the SQL workspace to build the same features.")

st.header("Upload a model")
FORM_DEFAULTS = {"sb_name": "", "sb_version": "1", "sb_intended": "", "sb_training": "",
                 "sb_final": False,
                 **{f"sb_n_{field}": "" for field in sandbox.NARRATIVE_FIELDS}}
if st.session_state.pop("sb_clear_form", False):  # after a submit: an empty form again
    st.session_state.update(FORM_DEFAULTS)
    st.session_state.pop("sb_file", None)
with st.form("sb_upload", clear_on_submit=True):
    upload = st.file_uploader("ONNX model (checked by content; pickle/joblib refused)",
                              key="sb_file")
    name = st.text_input("Model name", key="sb_name")
    version = st.text_input("Model version", value="1", key="sb_version")
    intended = st.text_area("Intended use", key="sb_intended")
    training = st.text_area("Training data (description)", key="sb_training")
    final = st.checkbox("Final submission: the full report (uses one of your final reports)",
                        key="sb_final")
    with st.expander("More for the CHAI model card (optional)"):
        narrative = {field: st.text_input(label, key=f"sb_n_{field}", max_chars=cap)
                     if cap <= 500 else st.text_area(label, key=f"sb_n_{field}", max_chars=cap)
                     for field, (label, cap) in sandbox.NARRATIVE_FIELDS.items()}
    dry = st.form_submit_button("Dry run on the synthetic twin (no quota)")
    real = st.form_submit_button("Submit for validation", type="primary")
if dry or real:
    model_card = {"name": name, "version": version, "intended_use": intended,
                  "training_data": training, **narrative}
    if upload is None:
        st.warning("Choose a model file first.")
    else:
        try:
            if dry:
                with st.status("Dry run: scoring the synthetic twin in isolation…") as box:
                    result = sandbox.dry_run(ctx, me, task_id, upload, model_card, upload.name)
                    box.update(label=f"Dry run {result['status']}",
                               state="complete" if result["status"] == "completed" else "error")
                st.session_state["sb_last_run"] = result["id"]
                st.session_state["sb_clear_form"] = True
                widgets.flash(f"Dry run {result['id']} {result['status']}: "
                              f"{result['outcome'] or ''} {result['message'] or ''}".strip(),
                              "success" if result["status"] == "completed" else "error")
            else:
                run_id = sandbox.submit(ctx, me, task_id, upload, model_card, upload.name,
                                        final=final)
                st.session_state["sb_last_run"] = run_id
                st.session_state["sb_clear_form"] = True
                widgets.flash(f"Run {run_id} queued. Its page shows its progress and then its "
                              f"report.")
        except PortalError as exc:
            show_error(exc)
if st.session_state.get("sb_last_run"):
    runs.link(st.session_state["sb_last_run"], f"Open run {st.session_state['sb_last_run']}")

st.header("History")


@st.fragment(run_every=runs.POLL_SECONDS if any(
    r["status"] in runs.LIVE for r in sandbox.list_runs(ctx, me, task_id=task_id)) else None)
def history() -> None:
    rows = sandbox.list_runs(ctx, me, task_id=task_id)
    if not rows:
        st.text("No runs yet for this task.")
        return
    frame = pd.DataFrame([{
        "run": r["id"], "kind": r["kind"].replace("_", " "), "final": r["final"],
        "status": r["status_text"],
        "outcome": r["outcome"], "model": r["model"], "release": r["release_version"],
        "submitted": r["created_at"], "page": f"run?id={r['id']}",
        "note": r["review_reason"] or r["message"]} for r in rows])
    st.dataframe(frame, hide_index=True, width="stretch", column_config={
        "page": st.column_config.LinkColumn("page", display_text="open")})
    if any(r["status"] in runs.LIVE for r in rows):
        st.caption("Runs in progress update here by themselves.")
    for r in rows[:5]:
        runs.link(r["id"], f"Run {r['id']} · {r['model']} · {r['status_text']}")


history()
