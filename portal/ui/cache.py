"""A small per-browser-session cache for slow, read-only service answers.

Entries live in ``st.session_state`` (one browser session, one signed-in person), and every key
starts with the principal's user id, so nothing is shared between people. Use only for answers
whose staleness is harmless for ``ttl`` seconds (the catalog listing, an extract's schema keyed
by the grant's state); never for decisions — the services re-check those on every call."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import TypeVar

import streamlit as st

from portal.identity import Principal

T = TypeVar("T")
_KEY = "_portal_session_cache"
MAX_ENTRIES = 64


def cached(principal: Principal, key: tuple[Hashable, ...], ttl: float,
           compute: Callable[[], T]) -> T:
    """``compute()``, remembered for ``ttl`` seconds under (user id, role, *key). Exceptions
    are not cached."""
    store: dict = st.session_state.setdefault(_KEY, {})
    full = (principal.user_id, principal.role, principal.team, *key)
    hit = store.get(full)
    now = time.monotonic()
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    value = compute()
    if len(store) >= MAX_ENTRIES:
        store.clear()
    store[full] = (now, value)
    return value
