"""Grants: active, expiring soon, expired and revoked; revoke with a reason."""

import streamlit as st

from portal.access import grants as grant_rules
from portal.errors import PortalError
from portal.services import access
from portal.ui import widgets
from portal.ui.errors import or_stop, show_error
from portal.ui.session import require_principal

me, ctx = require_principal("staff", page="grants")
st.title("Grants")
widgets.show_flash()

every = or_stop(lambda: access.list_grants(ctx, me))

BUCKETS = {key: key.replace("_", " ").capitalize() for key in grant_rules.BUCKETS}
tabs = st.tabs([f"{label} ({sum(g['bucket'] == key for g in every)})"
                for key, label in BUCKETS.items()])
for tab, key in zip(tabs, BUCKETS, strict=True):
    with tab:
        widgets.grants_table([g for g in every if g["bucket"] == key], staff=True)

st.header("Revoke a grant")
revocable = [g for g in every if g["bucket"] in ("active", "expiring_soon")]
if not revocable:
    st.info("No active grants.")
else:
    labels = {g["id"]: f"Grant {g['id']}: {g['team']} · {g['dataset_id']} · {g['tier']}"
              for g in revocable}
    with st.form("revoke_form"):
        grant_id = st.selectbox("Grant", list(labels), format_func=labels.get, key="revoke_id")
        reason = st.text_area("Reason (the team sees it when their next query is refused)",
                              key="revoke_reason")
        if st.form_submit_button("Revoke", type="primary"):
            try:
                access.revoke_grant(ctx, me, grant_id, reason)
                widgets.flash(f"Grant {grant_id} revoked.")
            except PortalError as exc:
                show_error(exc)
