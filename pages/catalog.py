"""Catalog: every dataset's card — description, provenance and licence, tables and columns
with classifications, row counts, the de-identification report with an age and sex chart
(small cells suppressed), and the tiers one can request with what each allows."""

import streamlit as st

from portal.errors import NotFound
from portal.services import catalog, policies
from portal.ui import catalog as sections
from portal.ui.cache import cached
from portal.ui.errors import or_stop
from portal.ui.session import require_principal

me, ctx = require_principal("any", page="catalog")
st.title("Catalog")

datasets = or_stop(lambda: cached(me, ("datasets",), 30, lambda: catalog.list_datasets(ctx, me)))
if not datasets:
    st.info("No datasets yet.")
    st.stop()

titles = {d["id"]: f"{d['title']} ({d['id']})" + ("" if d["status"] == "released"
                                                  else " — no release yet") for d in datasets}
dataset_id = st.selectbox("Dataset", list(titles), format_func=titles.get, key="catalog_dataset")
card = or_stop(lambda: catalog.describe_dataset(ctx, me, dataset_id))
try:
    policy = policies.dataset_policy(ctx, dataset_id)
except NotFound:
    policy = None

sections.header(card)
tab_tables, tab_report, tab_tiers = st.tabs(["Tables and columns", "De-identification report",
                                             "Access tiers"])
with tab_tables:
    sections.tables(card)
with tab_report:
    sections.report(card)
with tab_tiers:
    sections.tiers(policy)
