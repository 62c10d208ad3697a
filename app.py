"""Streamlit entry point: who is signed in → the pages for that role. No logic here; each page
runs its own guard."""

import streamlit as st

from portal.ui import nav, session

# Grids and charts never export data themselves (downloads are audited buttons; see
# portal/ui/csvexport.py), also when the app runs without this folder's .streamlit/config.toml.
st.set_option("client.disableDataExport", True)
st.set_page_config(page_title="Accelerator Portal", page_icon=":material/health_and_safety:",
                   layout="wide")
st.navigation(nav.pages_for(session.resolve().kind)).run()
