"""Run pages: live progress while a run waits and is scored, links to a run's page, and the
report's downloads (JSON, HTML, CHAI model card, TRIPOD+AI checklist)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from portal.identity import Principal
from portal.services import exports, sandbox
from portal.services.context import Context
from sandbox import tripod

RUN_PAGE = "pages/validation_run.py"
POLL_SECONDS = 2.0
LIVE = frozenset({"queued", "running"})


def link(run_id: int, label: str | None = None) -> None:
    """A link to the run's own page (a plain link when the page is opened outside the
    navigation, as in page tests)."""
    from streamlit.errors import StreamlitAPIException

    from portal.ui.text import md_escape

    text = md_escape(label) if label else f"Open run {int(run_id)}"
    try:
        st.page_link(RUN_PAGE, label=text, icon=":material/open_in_new:",
                     query_params={"id": str(int(run_id))})
    except StreamlitAPIException:
        st.markdown(f"[{text}](run?id={int(run_id)})")


def _seconds_since(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        started = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - started).total_seconds())


def progress(status: dict[str, Any]) -> None:
    """The stage of a run, as a progress bar and a sentence."""
    state = status["status"]
    if state == "queued":
        ahead = status.get("queue_ahead") or 0
        st.progress(0.1, text=f"Queued: waiting for a worker ({ahead} run"
                              f"{'s' if ahead != 1 else ''} ahead).")
    elif state == "running":
        elapsed = _seconds_since(status.get("started_at")) or 0.0
        st.progress(min(0.9, 0.3 + elapsed / 120), text=f"Scoring in isolation, then computing "
                    f"figures (started {elapsed:.0f} s ago).")
    elif state == "failed":
        st.error(f"Failed: {status['outcome']}. {status['message'] or ''}")
    elif state == "withheld":
        st.warning(f"Staff withheld the results: {status['review_reason']}")
    elif state == "awaiting_review":
        st.info("Finished: platform staff review the results before your team sees them.",
                icon=":material/pending:")
    else:
        st.success(f"{state.replace('_', ' ').capitalize()}: {status['status_text']}.")


def live_status(ctx: Context, me: Principal, run_id: int, first: dict[str, Any]) -> None:
    """Progress that updates by itself (a fragment polled every :data:`POLL_SECONDS` while
    the run is queued or running); when the run leaves those states the whole page reruns to
    show what came of it."""
    every = POLL_SECONDS if first["status"] in LIVE else None

    @st.fragment(run_every=every)
    def _poll() -> None:
        current = sandbox.run_status(ctx, me, run_id)
        progress(current)
        if every is not None and current["status"] not in LIVE:
            st.rerun(scope="app")

    _poll()


def cached_report(ctx: Context, me: Principal, status: dict[str, Any]) -> dict[str, Any]:
    """The report, read again on every rerun so that a grant revoked or expired since is
    refused at once (the service audits a person's repeated reads of one report once)."""
    return sandbox.report(ctx, me, status["id"])


def downloads(ctx: Context, me: Principal, report: dict[str, Any]) -> None:
    """Report downloads; the exports are built (and audited) only when clicked."""
    run_id = int(report["run"]["id"])
    title = f"{report['task']['title']} — run {run_id}"
    d1, d2, d3, d4 = st.columns(4)
    d1.download_button("Report (JSON)", json.dumps(report, indent=1),
                       file_name=f"validation-run-{run_id}.json", mime="application/json",
                       on_click="ignore")
    d2.download_button("Report (HTML)", lambda: sandbox.report(ctx, me, run_id, "html"),
                       file_name=f"validation-run-{run_id}.html", mime="text/html",
                       on_click="ignore")
    d3.download_button("CHAI model card (XML)",
                       lambda: exports.model_card_xml(ctx, me, run_id),
                       file_name=f"chai-model-card-run-{run_id}.xml", mime="application/xml",
                       on_click="ignore")
    d4.download_button("TRIPOD+AI checklist",
                       lambda: tripod.to_markdown(exports.tripod_checklist(ctx, me, run_id),
                                                  title),
                       file_name=f"tripod-ai-run-{run_id}.md", mime="text/markdown",
                       on_click="ignore")
