"""Shared widgets: the development sign-in banner, the sign-in prompt, refusals, how to join,
the signed-in box in the sidebar. Every user- or dataset-supplied string goes through
:func:`portal.ui.text.md_escape` or a non-markdown element."""

from __future__ import annotations

import streamlit as st

from portal.errors import Denied
from portal.identity import Principal
from portal.ui.errors import error_text
from portal.ui.text import md_escape

DEV_BANNER = ("Development sign-in: the embedded test identity provider is in use. "
              "Use demo data only.")


def dev_sign_in_banner() -> None:
    st.warning(DEV_BANNER, icon=":material/science:")


def sign_in_prompt(development: bool = False) -> None:
    """What a signed-out visitor sees on every page (with the demo personas in development)."""
    st.title("Accelerator Portal")
    st.write("Governed access to de-identified clinical datasets and model validation for "
             "the health system's startup accelerator. Sign in with your organisation account.")
    if st.button("Sign in", type="primary", key="portal_sign_in"):
        st.login()
    if development:
        from portal.demo import PERSONAS

        lines = [f"- `{p.sub}` — {md_escape(p.email)} ("
                 + ("platform staff" if p.role == "staff" else f"startup {md_escape(p.team)}")
                 + ")" for p in PERSONAS]
        st.markdown("Development sign-in: on the provider's page, click a persona's button.\n\n"
                    + "\n".join(lines))


def sign_out_button(key: str) -> None:
    if st.button("Sign out", key=key):
        st.logout()


def refusal(error: Denied | None) -> None:
    """A refused sign-in (suspended, expired session, conflicting identity)."""
    st.title("You cannot use the portal right now")
    st.error(md_escape(error_text(error or Denied())), icon=":material/block:")
    expired = error is not None and error.code == "session_expired"
    if expired and st.button("Sign in again", type="primary", key="portal_sign_in_again"):
        st.login()
    sign_out_button("portal_sign_out_refused")


def how_to_join(principal: Principal | None) -> None:
    """For a signed-in person the portal does not know: how to get an invitation."""
    st.title("How to join the Accelerator Portal")
    who = md_escape(principal.email) if principal and principal.email else "this account"
    st.markdown(
        f"You are signed in as **{who}**, but this account is not a portal user yet.\n\n"
        "The portal is open to startups in the health system's accelerator and to platform "
        "staff. To join:\n\n"
        "1. Ask your accelerator contact to onboard your startup; platform staff then invite "
        "each team member by e-mail address.\n"
        "2. Sign in again with the invited address, using an account whose e-mail address is "
        "verified by your organisation. The first sign-in links it to your invitation.\n\n"
        "If you already had access, your invitation may have gone to another address: contact "
        "platform staff."
    )
    sign_out_button("portal_sign_out_unknown")


def signed_in_sidebar(principal: Principal) -> None:
    with st.sidebar:
        role = "Platform staff" if principal.role == "staff" else f"Team {principal.team}"
        st.caption(f"Signed in as {md_escape(principal.email)} · {md_escape(role)}")
        sign_out_button("portal_sign_out")


def requests_table(rows: list[dict]) -> None:
    """Access requests as a grid (cells are rendered as text, never markup)."""
    if not rows:
        st.info("No requests yet.")
        return
    st.dataframe(
        [{"request": r["id"], "dataset": r["dataset_id"], "tier": r["tier"],
          "status": r["status"], "approvals": f"{r.get('approvals_given', 0)}/"
                                              f"{r['approvals_required']}",
          "submitted": r["created_at"], "by": r["requested_by"],
          "decision reason": r.get("decision_reason") or ""} for r in rows],
        hide_index=True, width="stretch")


def grants_table(rows: list[dict], staff: bool = False) -> None:
    """Grants as a grid with days left and status."""
    if not rows:
        st.info("No grants here.")
        return
    st.dataframe(
        [{"grant": g["id"], **({"team": g["team"]} if staff else {}),
          "dataset": g["dataset_id"], "tier": g["tier"], "status": g["effective_status"],
          "days left": g["days_left"], "expires": g["expires_at"],
          "approved by": g["approved_by"], "conditions": g.get("conditions") or "",
          "revoked reason": g.get("revoked_reason") or ""} for g in rows],
        hide_index=True, width="stretch")


def history_tables(history: dict) -> None:
    """A team's other requests and its grants, for reviewers."""
    st.caption("Other requests")
    if history.get("requests"):
        st.dataframe(history["requests"], hide_index=True, width="stretch")
    else:
        st.text("None.")
    st.caption("Grants")
    if history.get("grants"):
        st.dataframe(history["grants"], hide_index=True, width="stretch")
    else:
        st.text("None.")


_FLASH_KEY = "_portal_flash"


def flash(message: str) -> None:
    """Remember a success message and rerun, so the page shows fresh data and the message."""
    st.session_state[_FLASH_KEY] = message
    st.rerun()


def show_flash() -> None:
    message = st.session_state.pop(_FLASH_KEY, None)
    if message:
        st.success(message, icon=":material/check_circle:")


def request_detail(request: dict) -> None:
    """One request's state and its reviews (decisions, reasons, conditions)."""
    st.caption(f"Request {request['id']} · {md_escape(request['dataset_id'])} · "
               f"{md_escape(request['tier'])} · {md_escape(request['status'])} · approvals "
               f"{request.get('approvals_given', 0)}/{request['approvals_required']}"
               + (f" · grant {request['grant_id']}" if request.get("grant_id") else ""))
    if request.get("decision_reason"):
        st.text(f"Reason: {request['decision_reason']}")
    reviews = request.get("reviews") or []
    if reviews:
        st.dataframe([{"decision": r["decision"], "by": r["reviewer"], "tier": r["tier"],
                       "days": r["days"], "conditions": r["conditions"], "reason": r["reason"],
                       "at": r["created_at"]} for r in reviews], hide_index=True,
                     width="stretch")


def audit_chain_status(chain: dict) -> None:
    """Whether the audit chain verifies (a VerifyResult as a dict), with what it covers."""
    scope = "whole chain" if chain.get("full") else f"{chain['checked']} new event(s)"
    if chain["ok"]:
        st.success(f"Audit chain verifies ({scope} checked): {chain['events']} events up to "
                   f"event {chain['head_id']}, none altered, inserted or removed; "
                   f"{chain['checkpoints']} signed checkpoint(s) matched.")
    else:
        st.error(md_escape(f"Audit chain does NOT verify: {chain['problem']}"))
    latest = chain.get("latest_checkpoint")
    if latest:
        st.caption(f"Newest signed checkpoint: event {latest['last_id']} at {latest['at']}.")
    for note in chain.get("notes", []):
        st.caption(md_escape(f"Note: {note}"))
