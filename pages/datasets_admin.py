"""Datasets (staff): releases and their de-identification reports (formatted sections, with the
dev / held-out / suppressed split); rebuild a release and rebuild extracts after a policy
change, each after an explicit confirmation."""

import streamlit as st

from portal.errors import PortalError
from portal.services import admin, catalog
from portal.ui import catalog as sections
from portal.ui import confirm, widgets
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
    with st.expander(f"Release {card['release']['version']}: de-identification report",
                     expanded=True):
        sections.split_table(card["report"])
        sections.report_sections(card["report"])

current = (card.get("release") or {}).get("version")
left, right = st.columns(2)
with left:
    rebuild = confirm.button(
        "Rebuild release", "admin_rebuild_release", dataset_id,
        f"Build a new release of **{md_escape(dataset_id)}** from its source and make it "
        "current?" + (f" Release {md_escape(current)} becomes superseded." if current else "")
        + " A build that fails its checks publishes nothing.",
        "Confirm: build and publish", type="primary")
if rebuild:
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
with right:
    extracts = confirm.button(
        "Rebuild extracts", "admin_rebuild_extracts", dataset_id,
        f"Check the access policies of **{md_escape(dataset_id)}** and build each tier's "
        "governed extract from the current release?", "Confirm: rebuild extracts",
        help="After an access-policy change: check policies, build each tier's extract")
if extracts:
    try:
        built = admin.rebuild_extracts(ctx, me, dataset_id)
    except PortalError as exc:
        show_error(exc)
    else:
        widgets.flash(f"Extracts current for tiers: {', '.join(b['tier'] for b in built)}.")
