"""Audit: filter by actor, team, dataset, action, decision and dates (pickers offering what the
log holds); each event's details as readable fields; export CSV; show whether the keyed chain
verifies (new events on every visit, the whole chain on demand) and write a signed checkpoint."""

import datetime as dt

import streamlit as st

from portal.services import admin, catalog
from portal.ui import audit_view, widgets
from portal.ui.cache import cached
from portal.ui.csvexport import to_csv
from portal.ui.errors import or_stop
from portal.ui.session import require_principal

me, ctx = require_principal("staff", page="audit")
st.title("Audit")

chain = or_stop(lambda: admin.audit_chain_status(ctx, me))
widgets.audit_chain_status(chain)
cols = st.columns(2)
if cols[0].button("Verify the whole chain", key="audit_verify_full"):
    widgets.audit_chain_status(or_stop(lambda: admin.verify_audit_chain(ctx, me)).to_dict())
if cols[1].button("Sign a checkpoint", key="audit_checkpoint",
                  help="Verify the whole chain, then sign its head into the anchor folder"):
    made = or_stop(lambda: admin.write_audit_checkpoint(ctx, me))["checkpoint"]
    widgets.flash(f"Checkpoint signed: {made['events']} events up to event {made['last_id']}.")

options = or_stop(lambda: admin.audit_filter_options(ctx, me))
datasets = or_stop(lambda: cached(me, ("datasets",), 30, lambda: catalog.list_datasets(ctx, me)))


def picker(column, label: str, choices: list, key: str):
    return column.selectbox(label, choices, index=None, placeholder=f"Any {label.lower()}",
                            key=key)


cols = st.columns(3)
actor = picker(cols[0], "Actor", options["actor"], "audit_actor")
team = picker(cols[1], "Team", options["team"], "audit_team")
dataset = picker(cols[2], "Dataset", [d["id"] for d in datasets], "audit_dataset")
cols = st.columns(3)
action = picker(cols[0], "Action", options["action"], "audit_action")
decision = picker(cols[1], "Decision", options["decision"], "audit_decision")
first = dt.date.fromisoformat(options["first"][:10]) if options["first"] else None
dates = cols[2].date_input("Dates (from – until)", value=(), min_value=first,
                           max_value=dt.date.today() + dt.timedelta(days=1),
                           format="YYYY-MM-DD", key="audit_dates")
since, until = audit_view.date_bounds(dates)

filters = {"actor": actor, "team": team, "action": action, "decision": decision,
           "since": since, "until": until}
COLUMNS = ["id", "at", "actor", "team", "action", "target", "decision", "reason", "details"]


GRID_ROWS = 1000  # a grid people read; the CSV export holds every matching event


def load() -> tuple[list[dict], list[dict]]:
    rows = [e.to_dict() for e in admin.audit_events(ctx, me, dataset=dataset, **filters)]
    return rows, audit_view.grid_rows(rows[:GRID_ROWS])


# The log is append-only: for the same filters and the same newest event the answer is the
# same, so reruns (a picker opened, an event chosen) reuse it instead of re-reading 5,000 events.
rows, grid = cached(me, ("audit_rows", chain["head_id"], dataset, *sorted(filters.items())),
                    300, load)
st.caption(f"{len(rows):,} events (newest first, at most 5,000)."
           + (f" The grid shows the newest {GRID_ROWS:,}: narrow the filters, or export CSV for "
              "all of them." if len(rows) > GRID_ROWS else ""))
st.dataframe(grid, hide_index=True, width="stretch")
if rows:
    by_id = {r["id"]: r for r in rows[:GRID_ROWS]}
    chosen = st.selectbox("Event details", list(by_id), key="audit_event",
                          format_func=lambda i: f"Event {i} · {by_id[i]['at']} · "
                                                f"{by_id[i]['action']} · {by_id[i]['actor']}")
    st.dataframe(audit_view.event_rows(by_id[chosen]), hide_index=True, width="stretch")
st.download_button("Export CSV", lambda: to_csv(COLUMNS, rows), file_name="audit.csv",
                   mime="text/csv", key="audit_csv",
                   on_click=admin.record_audit_export,
                   args=(ctx, me, {**filters, "dataset": dataset}, len(rows)))
