"""Welcome: signed-out visitors sign in here; unknown people learn how to join; refused
sign-ins see why. The guard renders each of these and stops."""

import streamlit as st

from portal.ui.session import require_principal

me, _ = require_principal("any", page="welcome")
st.title("Accelerator Portal")
st.write("You are signed in. Reload the page to see your pages.")
