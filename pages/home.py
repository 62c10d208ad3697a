"""Home: the team, active grants with days left, open requests, recent queries and runs."""

import streamlit as st

from portal.ui.session import require_principal
from portal.ui.text import md_escape

me, ctx = require_principal("any", page="home")
st.title("Home")
if me.is_staff:
    st.write(f"Signed in as {md_escape(me.email)} (platform staff).")
else:
    st.write(f"Team **{md_escape(me.team)}** · signed in as {md_escape(me.email)}.")
