"""Store connections of a browser session: one per script thread (Streamlit reruns a session
on threads, which may overlap), closed once their thread has ended."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from portal.ui import session


@pytest.fixture
def browser_session(monkeypatch, settings):
    state: dict = {}
    monkeypatch.setattr(session.st, "session_state", state)
    monkeypatch.setattr(session, "settings", lambda: settings)
    yield state
    for ctx in state.get(session._CTX_KEY, {}).values():
        ctx.close()


def test_each_script_thread_of_a_session_has_its_own_connection(browser_session):
    mine = session.context()
    assert session.context() is mine  # the same run, the same connection
    seen: dict = {}
    entered, leave = threading.Event(), threading.Event()

    def overlapping_rerun() -> None:
        seen["ctx"] = session.context()
        entered.set()
        leave.wait(10)

    thread = threading.Thread(target=overlapping_rerun)
    thread.start()
    assert entered.wait(10)
    assert seen["ctx"] is not mine and seen["ctx"].conn is not mine.conn
    leave.set()
    thread.join(10)
    assert session.context() is mine  # the next run here prunes the ended thread's one
    with pytest.raises(sqlite3.ProgrammingError):
        seen["ctx"].conn.execute("SELECT 1")
    assert list(browser_session[session._CTX_KEY].values()) == [mine]
