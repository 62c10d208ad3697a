"""Datasets (staff): releases and their de-identification reports; rebuild a release; rebuild
extracts after a policy change."""

import streamlit as st

from portal.errors import PortalError
from portal.services import admin, catalog
from portal.ui import widgets
from portal.ui.errors import or_stop, show_error
from portal.ui.session import require_principal
from portal.ui.text import md_escape

me, ctx = require_principal("staff", page="datasets")
st.title("Datasets")
widgets.show_flash()

datasets = or_stop(lambda: catalog.list_datasets(ctx, me))
st.dataframe([{"dataset": d["id"], "title": d["title"], "release": d["release_version"],
               "built": d["built_at"], "persons": d["persons"], "tables": d["tables"],
               "rows": d["rows"], "status": d["status"]} for d in datasets],
             hide_index=True, width="stretch")

dataset_id = st.selectbox("Dataset", [d["id"] for d in datasets], key="admin_dataset")
card = or_stop(lambda: catalog.describe_dataset(ctx, me, dataset_id))
st.subheader("Releases")
history = (card.get("release") or {}).get("history") or []
if history:
    st.dataframe(history, hide_index=True, width="stretch")
else:
    st.info("No release yet.")
if card.get("report"):
    with st.expander("Current release: de-identification report"):
        st.text(catalog.report_summary(card["report"]))

left, right = st.columns(2)
if left.button("Rebuild release", type="primary", key="admin_rebuild_release"):
    with st.status(f"Building a release of {md_escape(dataset_id)}…", expanded=True) as status:
        try:
            done = catalog.build_releases(ctx, me, [dataset_id],
                                          progress=lambda line: st.write(md_escape(line)))
        except PortalError as exc:
            status.update(label="Release build refused", state="error")
            show_error(exc)
        else:
            status.update(label="Release built", state="complete")
            widgets.flash(f"Release {done[0]['version']} of {dataset_id} is now current.")
if right.button("Rebuild extracts", key="admin_rebuild_extracts",
                help="After an access-policy change: check policies, build each tier's extract"):
    try:
        built = admin.rebuild_extracts(ctx, me, dataset_id)
    except PortalError as exc:
        show_error(exc)
    else:
        widgets.flash(f"Extracts current for tiers: {', '.join(b['tier'] for b in built)}.")
