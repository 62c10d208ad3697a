"""SQL workspace: a dataset with an active grant, the schema of exactly its extract, an editor
with a highlighted preview, run with progress, results with truncation and suppression notices,
a quick chart, history and saved queries, download only where the tier allows."""

import streamlit as st

from portal.services import access
from portal.ui import workspace
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

browser, editor = st.columns([1, 2])
with browser:
    workspace.schema_browser(ctx, me, dataset_id, labels.get(dataset_id, ""))
with editor:
    workspace.saved_picker(ctx, me, dataset_id)
    sql = st.text_area("SQL (one read-only query)", key=workspace.EDITOR_KEY, height=180,
                       placeholder="SELECT gender_concept_id, count(*) FROM person GROUP BY 1")
    if sql.strip():
        st.code(sql, language="sql")
    if st.button("Run", type="primary", key="ws_run"):
        workspace.run(ctx, me, dataset_id, sql)
    workspace.show_result(ctx, me, dataset_id)
    workspace.history(ctx, me, dataset_id, sql)
