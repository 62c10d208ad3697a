"""Validation sandbox (startup teams): task cards, upload with a model card, dry run, progress,
history, and released reports with their plots and downloads."""

import json

import pandas as pd
import streamlit as st

from portal.errors import PortalError
from portal.services import sandbox
from portal.ui import widgets
from portal.ui.errors import or_stop, show_error
from portal.ui.session import require_principal

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
           f"{' · needs an active grant' if card.grant_required else ''}")
with st.expander("Features (in order) and the published SQL"):
    st.dataframe(pd.DataFrame(summary["features"]), hide_index=True, width="stretch")
    st.code(f"WITH population AS (\n{card.population_sql})\n, labels AS (\n{card.label_sql})\n"
            f", features AS (\n{card.features.sql})\nSELECT * FROM features", language="sql")
    st.caption("Run this on the dev partition in the SQL workspace to build the same features.")

st.header("Upload a model")
with st.form("sb_upload"):
    upload = st.file_uploader("ONNX model (checked by content; pickle/joblib refused)",
                              key="sb_file")
    name = st.text_input("Model name", key="sb_name")
    version = st.text_input("Model version", value="1", key="sb_version")
    intended = st.text_area("Intended use", key="sb_intended")
    training = st.text_area("Training data (description)", key="sb_training")
    final = st.checkbox("Final submission: the full report (uses one of your final reports)",
                        key="sb_final")
    dry = st.form_submit_button("Dry run on the synthetic twin (no quota)")
    real = st.form_submit_button("Submit for validation", type="primary")
if dry or real:
    model_card = {"name": name, "version": version, "intended_use": intended,
                  "training_data": training}
    try:
        if upload is None:
            st.warning("Choose a model file first.")
        elif dry:
            with st.status("Dry run: scoring the synthetic twin in isolation…") as box:
                result = sandbox.dry_run(ctx, me, task_id, upload, model_card, upload.name)
                box.update(label=f"Dry run {result['status']}",
                           state="complete" if result["status"] == "completed" else "error")
            (st.success if result["status"] == "completed" else st.error)(
                f"Dry run {result['id']}: {result['outcome'] or ''} {result['message'] or ''}")
        else:
            run_id = sandbox.submit(ctx, me, task_id, upload, model_card, upload.name,
                                    final=final)
            widgets.flash(f"Run {run_id} queued. It appears in the history below.")
    except PortalError as exc:
        show_error(exc)

st.header("History")
runs = sandbox.list_runs(ctx, me, task_id=task_id)
if not runs:
    st.text("No runs yet for this task.")
else:
    frame = pd.DataFrame(runs)[["id", "kind", "final", "status", "outcome", "model",
                                "release_version", "primary_value", "created_at", "message",
                                "review_reason"]]
    st.dataframe(frame, hide_index=True, width="stretch")
    if any(r["status"] in ("queued", "running") for r in runs):
        st.info("A run is in progress; refresh to see its progress.", icon=":material/pending:")
        st.button("Refresh", key="sb_refresh")

reportable = [r["id"] for r in runs if r["report_available"]]
if reportable:
    st.header("Report")
    run_id = st.selectbox("Run", reportable, key="sb_report_run")
    report = or_stop(lambda: sandbox.released_report(ctx, me, run_id))
    ladder, primary = report["ladder"], report["primary"]
    st.caption(f"Release {report['release']['dataset']} {report['release']['version']} · "
               f"protocol {report['task']['protocol_hash'][:16]}… · model "
               f"{report['model']['sha256'][:16]}… · code {report['code_version']} · "
               f"{report['generated_at']}")
    m1, m2 = st.columns(2)
    m1.metric(f"{primary['metric'].upper()} ({primary['source']})",
              "—" if primary["value"] is None else f"{primary['value']:g}")
    m2.metric("Ladder best", "—" if ladder["best"] is None else f"{ladder['best']:g}",
              "improved" if ladder["improved"] else "unchanged", delta_color="off")
    st.caption(report["disclosure"]["mechanism"])

    def interval(entry):
        if not entry or entry.get("value") is None:
            return "not estimable"
        if entry.get("lower") is None:
            return f"{entry['value']:g}"
        return f"{entry['value']:g} ({entry['lower']:g}–{entry['upper']:g})"

    def downloads():
        d1, d2 = st.columns(2)
        d1.download_button("Download report (JSON)", json.dumps(report, indent=1),
                           file_name=f"validation-run-{run_id}.json", mime="application/json")
        d2.download_button("Download report (HTML)",
                           sandbox.released_report(ctx, me, run_id, "html"),
                           file_name=f"validation-run-{run_id}.html", mime="text/html")

    if report["metrics"] is None:
        st.info("Not a final submission: only the Ladder's figure is released.")
        downloads()
        st.stop()
    overall = report["metrics"]["overall"]
    for message in report["metrics"]["messages"]:
        st.warning(message)

    calibration = overall.get("calibration", {})
    st.dataframe(pd.DataFrame([
        {"figure": "Cases", "value (95% CI)": str(overall["n"])},
        {"figure": "Prevalence", "value (95% CI)": interval(overall["prevalence"])},
        {"figure": "AUROC", "value (95% CI)": interval(overall["auroc"])},
        {"figure": "AUPRC", "value (95% CI)": interval(overall["auprc"])},
        {"figure": "Brier", "value (95% CI)": interval(overall["brier"])},
        {"figure": "Calibration intercept",
         "value (95% CI)": interval(calibration.get("intercept"))},
        {"figure": "Calibration slope", "value (95% CI)": interval(calibration.get("slope"))},
    ]), hide_index=True)
    curves = report["metrics"]["curves"]
    if curves:
        p1, p2, p3 = st.columns(3)
        p1.caption("ROC curve")
        p1.line_chart(pd.DataFrame({"sensitivity": curves["roc"]["y"]},
                                   index=pd.Index(curves["roc"]["x"], name="1 − specificity")))
        p2.caption("Precision-recall curve")
        p2.line_chart(pd.DataFrame({"precision": curves["pr"]["y"]},
                                   index=pd.Index(curves["pr"]["x"], name="recall")))
        bins = [b for b in report["metrics"]["reliability"] if not b["suppressed"]]
        p3.caption("Calibration (observed vs predicted)")
        if bins:
            p3.scatter_chart(pd.DataFrame(bins), x="mean_predicted", y="observed")
    st.subheader("At decision thresholds")
    st.dataframe(pd.DataFrame([{
        "threshold": t["threshold"], "sensitivity": interval(t["sensitivity"]),
        "specificity": interval(t["specificity"]), "PPV": interval(t["ppv"]),
        "NPV": interval(t["npv"]), "net benefit": t["net_benefit"],
        "treat all": t["net_benefit_treat_all"]} if not t["suppressed"] else {
        "threshold": t["threshold"], "sensitivity": "suppressed"}
        for t in report["metrics"]["thresholds"]]), hide_index=True)
    st.subheader("Subgroups")
    st.dataframe(pd.DataFrame([{
        "subgroup": f"{s['attribute']}: {s['level']}",
        "cases": "suppressed" if s["suppressed"] else s["n"],
        "AUROC": "suppressed" if s["suppressed"] else interval(s["auroc"])}
        for s in report["metrics"]["subgroups"]]), hide_index=True)
    downloads()
