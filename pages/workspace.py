"""SQL workspace: a dataset with an active grant, a schema browser of exactly its extract, an
editor with highlighting, line numbers, completion and Ctrl/Cmd+Enter, run with progress,
results with truncation and suppression notices, a quick chart, saved queries (shared within
the team) and history loaded with one click, downloads only where the tier allows."""

import streamlit as st

from portal.services import access
from portal.ui import budget, editor, schema_panel, workspace
from portal.ui.errors import or_stop
from portal.ui.session import require_principal

me, ctx = require_principal("member", page="workspace")
st.title("SQL workspace")

labels = or_stop(lambda: workspace.dataset_labels(access.list_grants(ctx, me)))
if not labels and not st.query_params.get("dataset"):
    st.info("Your team has no grant yet. Use Request access to ask for a dataset.")
    st.stop()

# Datasets whose grant expired or was revoked stay listed: running a query there shows why
# it is refused (the service re-checks the grant on every query).
# A deep link (?dataset=...) may name any dataset: the services, not this page, decide.
options = workspace.with_linked_dataset(labels, st.query_params.get("dataset"))
dataset_id = st.selectbox("Dataset", options, format_func=lambda d: labels.get(d, d),
                          key="ws_dataset")
found = schema_panel.overview(ctx, me, dataset_id, labels.get(dataset_id, ""))

# Query budget and privacy cost of the chosen dataset (portal.ui.budget) belong here, above
# the editor, so the cost is seen before running.
budget_slot = st.container()

browser, main = st.columns([2, 3])
with browser:
    schema_panel.browser(ctx, me, dataset_id, found)
with main:
    state = editor.render(schema_panel.plain_schema(found), dataset_id)
    cols = st.columns([1, 3])
    clicked = cols[0].button("Run", type="primary", key="ws_run")
    cols[1].toggle("Plain text editor", key=editor.PLAIN_KEY,
                   help="A plain text box instead of the code editor (for screen readers).")
    if clicked or state.submitted:
        workspace.run(ctx, me, dataset_id, state.sql)
    workspace.show_result(ctx, me, dataset_id, state.sql,
                          schema_panel.column_descriptions(found))
    workspace.saved_queries(ctx, me, dataset_id, state.sql)
    workspace.history(ctx, me, dataset_id)
with budget_slot:  # filled last, so the gauge counts the query just run
    budget.panel(ctx, me, dataset_id, state.sql)
