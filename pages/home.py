"""Home: for a startup member, the team, active grants with days left, open requests, recent
queries and validation runs; for staff, what needs attention."""

import streamlit as st

from portal import authz
from portal.errors import PortalError
from portal.services import access
from portal.ui import home
from portal.ui.errors import show_error
from portal.ui.session import require_principal
from portal.ui.text import md_escape

me, ctx = require_principal("any", page="home")
st.title("Home")
try:
    if authz.can_staff(ctx.conn, me):
        st.write(f"Signed in as {md_escape(me.email)} (platform staff).")
        home.staff_summary(ctx, me)
    else:
        overview = access.team_overview(ctx, me)
        st.write(f"Team **{md_escape(overview['team_name'])}** ({md_escape(overview['team'])})"
                 f" · signed in as {md_escape(me.email)}.")
        home.member_summary(ctx, me, overview)
except PortalError as exc:
    show_error(exc)
