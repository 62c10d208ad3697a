"""Two-step confirmation for consequential staff actions (approve, rebuild, re-run all).

The first click only asks: it remembers *what* would be done (the subject: a dataset, a task,
the exact approval terms) in this browser session and shows the question with Confirm and
Cancel. Only Confirm acts, and only on the remembered subject; choosing another subject in the
meantime drops the question, so a confirmation never applies to something it did not name.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import streamlit as st

_PREFIX = "_portal_confirm_"


def ask(key: str, subject: Any) -> None:
    """Arm the confirmation ``key`` for ``subject`` (then rerun to show the question)."""
    st.session_state[_PREFIX + key] = subject
    st.rerun()


def pending(key: str) -> Any | None:
    """The subject awaiting confirmation under ``key``, if any."""
    return st.session_state.get(_PREFIX + key)


def drop(key: str) -> None:
    st.session_state.pop(_PREFIX + key, None)


def question(key: str, text: str, confirm_label: str) -> Any | None:
    """If ``key`` is armed, show ``text`` (trusted markdown: escape what it quotes) with
    ``confirm_label`` and Cancel. Returns the remembered subject when Confirm is clicked
    (disarming it), otherwise None."""
    subject = pending(key)
    if subject is None:
        return None
    with st.container(border=True):
        st.warning(text, icon=":material/help:")
        yes, no = st.columns(2)
        if yes.button(confirm_label, type="primary", key=f"{key}__yes"):
            drop(key)
            return subject
        if no.button("Cancel", key=f"{key}__no"):
            drop(key)
            st.rerun()
    return None


def button(label: str, key: str, subject: Hashable, text: str, confirm_label: str,
           **button_args: Any) -> bool:
    """A button that acts only after a second, explicit click: True once, on Confirm, for the
    same ``subject`` that was shown when the first click asked."""
    armed = pending(key)
    if armed is not None and armed != subject:
        drop(key)  # the selection changed: the question no longer names what would be done
        armed = None
    if armed is None:
        if st.button(label, key=key, **button_args):
            ask(key, subject)
        return False
    return question(key, text, confirm_label) is not None
