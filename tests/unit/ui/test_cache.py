"""The per-session cache never shares an entry between principals and expires."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

SCRIPT = '''
import streamlit as st
from portal.identity import Principal
from portal.ui.cache import cached

calls = st.session_state.setdefault("calls", [])
a = Principal(user_id=1, email="a@x", role="member", team="t1")
b = Principal(user_id=2, email="b@x", role="member", team="t2")
first = cached(a, ("k",), 60, lambda: calls.append("a") or "value-a")
again = cached(a, ("k",), 60, lambda: calls.append("a2") or "other")
other = cached(b, ("k",), 60, lambda: calls.append("b") or "value-b")
expired = cached(a, ("k",), 0, lambda: calls.append("a3") or "fresh")
st.write(f"{first}|{again}|{other}|{expired}|{','.join(calls)}")
'''


def test_cache_entries_are_keyed_by_principal_and_expire():
    at = AppTest.from_string(SCRIPT)
    at.run()
    assert at.markdown[0].value == "value-a|value-a|value-b|fresh|a,b,a3"
