"""Audit: filter by actor, team, dataset, action, decision and time; export CSV; show whether
the keyed chain verifies (new events on every visit, the whole chain on demand) and write a
signed checkpoint."""

import datetime as dt

import streamlit as st

from portal import audit
from portal.services import admin
from portal.ui import widgets
from portal.ui.csvexport import to_csv
from portal.ui.errors import or_stop
from portal.ui.session import require_principal

me, ctx = require_principal("staff", page="audit")
st.title("Audit")

widgets.audit_chain_status(or_stop(lambda: admin.audit_chain_status(ctx, me)))
cols = st.columns(2)
if cols[0].button("Verify the whole chain", key="audit_verify_full"):
    widgets.audit_chain_status(or_stop(lambda: admin.verify_audit_chain(ctx, me)).to_dict())
if cols[1].button("Sign a checkpoint", key="audit_checkpoint",
                  help="Verify the whole chain, then sign its head into the anchor folder"):
    made = or_stop(lambda: admin.write_audit_checkpoint(ctx, me))["checkpoint"]
    widgets.flash(f"Checkpoint signed: {made['events']} events up to event {made['last_id']}.")

cols = st.columns(3)
actor = cols[0].text_input("Actor (e-mail)", key="audit_actor").strip() or None
team = cols[1].text_input("Team", key="audit_team").strip() or None
dataset = cols[2].text_input("Dataset", key="audit_dataset").strip() or None
cols = st.columns(4)
action = cols[0].text_input("Action (e.g. query.run)", key="audit_action").strip() or None
decision = cols[1].selectbox("Decision", ["any", *audit.DECISIONS], key="audit_decision")
since = cols[2].date_input("From", value=None, key="audit_since")
until = cols[3].date_input("Until", value=None, key="audit_until")

filters = {"actor": actor, "team": team, "action": action,
           "decision": None if decision == "any" else decision,
           "since": since.isoformat() if since else None,
           "until": (until + dt.timedelta(days=1)).isoformat() if until else None}
events = admin.audit_events(ctx, me, dataset=dataset, **filters)
COLUMNS = ["id", "at", "actor", "team", "action", "target", "decision", "reason", "details"]
rows = [e.to_dict() for e in events]
st.caption(f"{len(rows)} events (newest first, at most 5,000).")
st.dataframe([{c: (str(r[c]) if c == "details" else r[c]) for c in COLUMNS} for r in rows],
             hide_index=True, width="stretch")
st.download_button("Export CSV", to_csv(COLUMNS, rows), file_name="audit.csv",
                   mime="text/csv", key="audit_csv",
                   on_click=admin.record_audit_export,
                   args=(ctx, me, {**filters, "dataset": dataset}, len(rows)))
