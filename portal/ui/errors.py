"""Showing errors to people: a stable code and a sentence, never internals."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from portal.errors import InternalError, PortalError, public_error
from portal.ui.text import md_escape

log = logging.getLogger("portal.ui")
T = TypeVar("T")


def error_text(exc: BaseException) -> str:
    """The line shown for an error: ``code — message`` for user errors; for anything else a
    generic message with a short reference that staff can find in the server log."""
    shown = public_error(exc)
    if isinstance(shown, InternalError) and shown.reference:  # logged and audited already
        return f"{shown.code} — {shown.message}"
    if isinstance(shown, InternalError) or not isinstance(exc, PortalError):
        reference = secrets.token_hex(4)
        log.error("internal error (reference %s)", reference, exc_info=exc)
        return f"{shown.code} — {shown.message} Reference: {reference}."
    return f"{shown.code} — {shown.message}"


def show_error(exc: BaseException) -> None:
    """Render an error box for ``exc`` (see :func:`error_text`)."""
    st.error(md_escape(error_text(exc)), icon=":material/block:")


def or_stop(load: Callable[[], T]) -> T:
    """Run ``load`` (a service call the rest of the page needs); on a user-facing or internal
    portal error show it and stop the page there."""
    try:
        return load()
    except PortalError as exc:
        show_error(exc)
        st.stop()
        raise  # st.stop() raises; this keeps type checkers and readers sure nothing follows
