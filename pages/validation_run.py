"""One validation run: its progress while it waits and is scored (updating by itself), then
its report with the plots and downloads. Its team's members and platform staff may open it."""

import streamlit as st

from portal.errors import InvalidInput
from portal.services import sandbox
from portal.ui import report as report_view
from portal.ui import runs
from portal.ui.errors import or_stop, show_error
from portal.ui.session import require_principal
from portal.ui.text import md_escape

me, ctx = require_principal("any", page="run")
raw = st.query_params.get("id", "")
if not raw.isdigit():
    show_error(InvalidInput("run_id_required", "Open a run from Home, the sandbox history or "
                            "the validation runs page."))
    st.stop()
run_id = int(raw)
status = or_stop(lambda: sandbox.run_status(ctx, me, run_id))

st.title(f"Validation run {run_id}")
st.caption(md_escape(f"Task {status['task']} v{status['task_version']} · team {status['team']}"
                     f" · model {status['model']} · {status['kind'].replace('_', ' ')} · "
                     f"submitted {status['created_at']}"
                     + (f" · release {status['release_version']}"
                        if status["release_version"] else "")))
runs.live_status(ctx, me, run_id, status)

if status["report_available"]:
    document = or_stop(lambda: runs.cached_report(ctx, me, status))
    st.header("Report")
    report_view.show_report(document)
    runs.downloads(ctx, me, document)
