"""Review queue: each open request with the team, purpose, requested tier and the team's
history; approve (tier, duration up to the policy's maximum, conditions; confirmed in a second
step that states the exact terms) or deny with a reason.
Separation of duties is enforced by the service; its refusal is shown here."""

import datetime as dt

import streamlit as st

from portal.errors import PortalError
from portal.services import access
from portal.ui import confirm, widgets
from portal.ui.errors import or_stop, show_error
from portal.ui.session import require_principal
from portal.ui.text import md_escape

me, ctx = require_principal("staff", page="review_queue")
st.title("Review queue")
widgets.show_flash()

queue = or_stop(lambda: access.review_queue(ctx, me))
if not queue:
    st.info("No open requests.")


def review(item: dict) -> None:
    rid = item["id"]
    st.subheader(f"Request {rid}: {md_escape(item['team'])} → {md_escape(item['dataset_id'])}"
                 f" ({md_escape(item['tier'])})")
    st.caption(f"Submitted by {md_escape(item['requested_by'])} on {item['created_at']} · "
               f"{md_escape(item['status'])} · approvals {item['approvals_given']}/"
               f"{item['approvals_required']}")
    st.markdown("**Purpose**")
    st.text(item["purpose"])
    if item.get("ethics_reference"):
        st.text(f"Ethics reference: {item['ethics_reference']}")
    if not item.get("can_review"):
        st.warning(f"You may not decide this request ({md_escape(item['review_blocked_by'])}); "
                   "another member of staff must.")
    with st.expander("Team history"):
        history = item.get("team_history", {})
        widgets.history_tables(history)
    tiers = item.get("tiers") or {item["tier"]: {"max_grant_days": 365}}
    names = list(tiers)
    approve_col, deny_col = st.columns(2)
    with approve_col, st.form(f"approve_{rid}"):
        tier = st.selectbox("Tier", names, index=names.index(item["tier"])
                            if item["tier"] in names else 0, key=f"tier_{rid}")
        longest = tiers.get(tier, {}).get("max_grant_days", 365)
        days = st.number_input(f"Duration in days (at most {longest} for this tier)",
                               min_value=1, max_value=3650, value=min(90, longest),
                               key=f"days_{rid}")
        conditions = st.text_area("Conditions (optional)", key=f"conditions_{rid}")
        if st.form_submit_button("Approve", type="primary"):
            confirm.ask(f"approve_{rid}", (tier, int(days), conditions))
    confirm_approval(item)
    with deny_col, st.form(f"deny_{rid}"):
        reason = st.text_area("Reason for denying", key=f"reason_{rid}")
        if st.form_submit_button("Deny"):
            act(lambda: access.deny_request(ctx, me, rid, reason), f"Request {rid} denied.")


def confirm_approval(item: dict) -> None:
    """The second step of Approve: the exact terms, then Confirm or Cancel."""
    rid, key = item["id"], f"approve_{item['id']}"
    terms = confirm.pending(key)
    if terms is None:
        return
    tier, days, conditions = terms
    until = (dt.date.today() + dt.timedelta(days=days)).isoformat()
    text = (f"Approve request {rid}? Team **{md_escape(item['team'])}** gets tier "
            f"**{md_escape(tier)}** of **{md_escape(item['dataset_id'])}** for {days} days "
            f"(until {until}), " + (f"with the conditions: {md_escape(conditions)}"
                                    if conditions.strip() else "with no conditions") + ".")
    if confirm.question(key, text, "Confirm approval"):
        act(lambda: access.approve_request(ctx, me, rid, days, tier, conditions),
            f"Request {rid} approved.")


def act(call, done: str) -> None:
    try:
        result = call()
    except PortalError as exc:
        show_error(exc)
        return
    widgets.flash(f"{done} Status: {md_escape(result['status'])}.")


for entry in queue:
    with st.container(border=True):
        review(entry)
