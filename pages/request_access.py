"""Request access: pick a dataset and tier, state the purpose, agree to the terms, add an ethics
reference where required; follow the team's requests and withdraw an open one."""

import streamlit as st

from portal.access.states import REQUEST_OPEN
from portal.errors import PortalError
from portal.services import access, policies
from portal.ui import widgets
from portal.ui.errors import or_stop, show_error
from portal.ui.session import require_principal
from portal.ui.text import md_escape

me, ctx = require_principal("member", page="request_access")
st.title("Request access")
widgets.show_flash()

loaded = or_stop(lambda: policies.policies(ctx))

dataset = st.selectbox("Dataset", sorted(loaded), key="request_dataset")
policy = loaded[dataset]
tier_name = st.selectbox("Tier", list(policy.tiers), key="request_tier")
tier = policy.tiers[tier_name]
rules = tier.request
st.caption(md_escape(tier.description))

with st.form("request_form", clear_on_submit=False):
    purpose = st.text_area(
        f"Purpose ({rules.purpose_min_chars}–{rules.purpose_max_chars} characters)",
        max_chars=rules.purpose_max_chars, key="request_purpose",
        help="What you will do with the data and why this tier is needed.")
    label = "Ethics approval reference" + (" (required)" if rules.ethics_reference_required
                                           else " (optional)")
    ethics = st.text_input(label, max_chars=200, key="request_ethics")
    st.markdown("**Terms of use**")
    st.text(policy.terms)
    agreed = st.checkbox("I agree to the terms of use", key="request_terms")
    submitted = st.form_submit_button("Submit request", type="primary")

if submitted:
    try:
        made = access.submit_request(ctx, me, dataset, tier_name, purpose, agreed,
                                     ethics or None)
        widgets.flash(f"Request {made['id']} submitted; platform staff will review it.")
    except PortalError as exc:
        show_error(exc)

st.header("Your team's requests")
team_requests = or_stop(lambda: access.list_requests(ctx, me))
widgets.requests_table(team_requests)

# Follow one request; a deep link (?request=N) may name any id: the service decides (and audits
# a request of another team).
linked = st.query_params.get("request")
ids = ([linked] if linked else []) + [r["id"] for r in team_requests if str(r["id"]) != linked]
if ids:
    shown_id = st.selectbox("Follow a request", ids, key="follow_id")
    try:
        widgets.request_detail(access.get_request(ctx, me, shown_id))
    except PortalError as exc:
        show_error(exc)

open_ids = [r["id"] for r in team_requests if r["status"] in REQUEST_OPEN]
if open_ids:
    chosen = st.selectbox("Open request", open_ids, key="withdraw_id")
    if st.button("Withdraw request", key="withdraw"):
        try:
            access.withdraw_request(ctx, me, chosen)
            widgets.flash(f"Request {chosen} withdrawn.")
        except PortalError as exc:
            show_error(exc)
    st.caption("If staff could not approve it because the dataset's terms or the tier changed "
               "since you asked (terms_changed, tier_changed), re-confirm it as they read now.")
    agree_now = st.checkbox("I agree to the dataset's terms as they read now",
                            key="reconfirm_terms")
    if st.button("Re-confirm request", key="reconfirm"):
        try:
            access.reconfirm_request(ctx, me, chosen, agree_now)
            widgets.flash(f"Request {chosen} re-confirmed.")
        except PortalError as exc:
            show_error(exc)
