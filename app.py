"""Streamlit entry point: who is signed in → the pages for that role. No logic here; each page
runs its own guard."""

import streamlit as st

from portal.ui import nav, session

st.set_page_config(page_title="Accelerator Portal", page_icon=":material/health_and_safety:",
                   layout="wide")
st.navigation(nav.pages_for(session.resolve().kind)).run()
