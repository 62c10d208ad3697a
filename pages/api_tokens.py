"""API tokens (startup members): make a personal access token for the portal's HTTP API (its
text is shown once), see your tokens, revoke one."""

import pandas as pd
import streamlit as st

from portal.errors import PortalError
from portal.services import tokens
from portal.ui import widgets
from portal.ui.errors import or_stop, show_error
from portal.ui.session import require_principal

me, ctx = require_principal("member", page="api_tokens")
st.title("API tokens")
api = f"{ctx.settings.api_url}/api/v1"
st.caption(f"Automate validation and queries from your CI with the HTTP API at {api} "
           f"(OpenAPI document: {api}/openapi.json; guide: docs/api.md). A token acts as you, "
           f"for team {me.team}, on the datasets and actions you choose, until it expires.")
widgets.show_flash()

max_days = ctx.settings.api_token_max_days
with st.form("token_form", clear_on_submit=True):
    name = st.text_input("Name (what the token is for, e.g. 'GitHub Actions')",
                         max_chars=100, key="token_name")
    datasets = st.multiselect("Datasets", tokens.known_datasets(ctx), key="token_datasets")
    actions = st.multiselect("Actions", list(tokens.ACTIONS), key="token_actions",
                             format_func=lambda a: f"{a} — {tokens.ACTIONS[a]}")
    days = st.number_input(f"Lifetime in days (at most {max_days})", min_value=1,
                           max_value=max_days, value=min(tokens.DEFAULT_DAYS, max_days),
                           step=1, key="token_days")
    create = st.form_submit_button("Create token", type="primary")

if create:
    try:
        created = tokens.create_token(ctx, me, name, datasets, actions, int(days))
    except PortalError as exc:
        show_error(exc)
    else:
        st.success(f"Token {created.info.token_id} created, valid until "
                   f"{created.info.expires_at}. Copy it now: it is shown only this once.",
                   icon=":material/key:")
        st.code(created.secret, language=None)
        st.caption("Store it as a secret of your CI (e.g. PORTAL_TOKEN), then:")
        st.code(f'curl -H "Authorization: Bearer $PORTAL_TOKEN" {api}/token', language="bash")

st.header("Your tokens")
listed = or_stop(lambda: tokens.list_tokens(ctx, me))
if not listed:
    st.text("You have no tokens yet.")
else:
    st.dataframe(pd.DataFrame([{
        "token": t.token_id, "name": t.name, "status": t.status,
        "datasets": ", ".join(t.datasets), "actions": ", ".join(t.actions),
        "created": t.created_at, "expires": t.expires_at, "last used": t.last_used_at or "never",
    } for t in listed]), hide_index=True, width="stretch")

active = {t.token_id: t for t in listed if t.status == "active"}
if active:
    with st.form("revoke_form"):
        chosen = st.selectbox("Token to revoke", list(active), key="revoke_token",
                              format_func=lambda i: f"{i} · {active[i].name}")
        if st.form_submit_button("Revoke"):
            try:
                tokens.revoke_token(ctx, me, chosen)
            except PortalError as exc:
                show_error(exc)
            else:
                widgets.flash(f"Token {chosen} revoked: it stops working at its next use.")
