"""The Streamlit adapter: session → Principal, the page guard, error display, shared widgets.

Only this package, ``pages/`` and ``app.py`` import streamlit. Nothing here decides policy: the
guard asks :func:`portal.identity.sign_in`, pages call ``portal.services``.
"""
