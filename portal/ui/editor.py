"""The SQL editor of the workspace: an Ace editor (the ``streamlit-code-editor`` component, its
front-end shipped in the wheel) with SQL highlighting, line numbers, Ctrl/Cmd+Enter to run and
completion of the extract's tables and columns; a plain text area as the fallback (chosen by
the person, or when the component is not installed).

The SQL text of record lives in ``st.session_state[TEXT_KEY]``. Loading a history row, a saved
query or inserting a name changes it and bumps a generation counter, which remounts the editor
with the new text; between remounts the component's text is never pushed back into it (that
would overwrite keystrokes typed while a rerun was in flight). Event handling is in plain
functions (:func:`apply_event`, :func:`insert_at`) tested without a browser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

TEXT_KEY = "_ws_sql_text"
AREA_KEY = "ws_sql"  # the fallback text area
PLAIN_KEY = "ws_plain_editor"
_GEN_KEY = "_ws_editor_gen"
_MOUNTED_KEY = "_ws_editor_mounted"  # text the current editor generation was mounted with
_SEEN_KEY = "_ws_editor_seen"  # id of the last component event handled
_CURSOR_KEY = "_ws_editor_cursor"
_AREA_GEN_KEY = "_ws_area_gen"
_RUN_KEY = "_ws_editor_run"  # SQL that Ctrl/Cmd+Enter asked to run, until it has run
PLACEHOLDER = "SELECT gender_concept_id, count(*) FROM person GROUP BY 1"

try:  # the fallback keeps the workspace usable where the component is missing
    from code_editor import code_editor as _code_editor
except ImportError:  # pragma: no cover - the component is a declared dependency
    _code_editor = None


@dataclass(frozen=True)
class EditorState:
    """What the editor holds after this rerun: the SQL, and whether Ctrl/Cmd+Enter asked to
    run it."""

    sql: str
    submitted: bool = False


def component_available() -> bool:
    return _code_editor is not None


def text() -> str:
    return str(st.session_state.get(TEXT_KEY, ""))


def load(sql: str) -> None:
    """Replace the editor's text (a history row, a saved query). Safe in widget callbacks."""
    st.session_state[TEXT_KEY] = str(sql)
    st.session_state[_GEN_KEY] = int(st.session_state.get(_GEN_KEY, 0)) + 1


def insert(snippet: str) -> None:
    """Insert ``snippet`` at the editor's last known cursor (the end when unknown)."""
    load(insert_at(text(), snippet, st.session_state.get(_CURSOR_KEY)))


def ran() -> None:
    """The asked-for run has happened (its result is kept)."""
    st.session_state.pop(_RUN_KEY, None)


def generation() -> int:
    return int(st.session_state.get(_GEN_KEY, 0))


def insert_at(sql: str, snippet: str, cursor: Any) -> str:
    """``sql`` with ``snippet`` inserted at an Ace cursor ``{"row", "column"}`` (0-based),
    separated by spaces where it would otherwise run into a word; at the end when the cursor is
    missing or out of range."""
    lines = sql.split("\n")
    row = cursor.get("row") if isinstance(cursor, dict) else None
    column = cursor.get("column") if isinstance(cursor, dict) else None
    if isinstance(row, int) and isinstance(column, int) and 0 <= row < len(lines):
        offset = sum(len(line) + 1 for line in lines[:row]) + max(0, min(column,
                                                                        len(lines[row])))
    else:
        offset = len(sql)
    before, after = sql[:offset], sql[offset:]
    if before and not before[-1].isspace() and before[-1] not in "(,.":
        snippet = " " + snippet
    if after and not after[0].isspace() and after[0] not in "),.;":
        snippet = snippet + " "
    return before + snippet + after


def apply_event(state: dict, response: Any) -> EditorState:
    """Take one component response into ``state`` (a session-state mapping): a new event
    (by id) updates the text of record and the cursor; ``submit`` (Ctrl/Cmd+Enter) asks to run
    that text. The request stays until :func:`ran` (a rerun that interrupts the run asks
    again) and is dropped when the text changes. A response seen before changes nothing (the
    component repeats its last value on every rerun)."""
    current = str(state.get(TEXT_KEY, ""))
    if isinstance(response, dict) and response.get("id") and (
            response["id"] != state.get(_SEEN_KEY)):
        state[_SEEN_KEY] = response["id"]
        current = str(response.get("text") or "")
        state[TEXT_KEY] = current
        if isinstance(response.get("cursor"), dict):
            state[_CURSOR_KEY] = response["cursor"]
        if response.get("type") == "submit":
            state[_RUN_KEY] = current
    if _RUN_KEY in state and state[_RUN_KEY] != current:
        state.pop(_RUN_KEY)
    return EditorState(current, submitted=state.get(_RUN_KEY) == current)


def completions(schema: dict[str, list[tuple[str, str]]]) -> list[dict[str, Any]]:
    """Ace completion entries: each table, then each column (with its table and type)."""
    items = [{"caption": t, "value": t, "meta": "table", "score": 1000} for t in schema]
    seen: dict[str, list[str]] = {}
    types: dict[str, str] = {}
    for table, columns in schema.items():
        for column, dtype in columns:
            seen.setdefault(column, []).append(table)
            types.setdefault(column, dtype)
    for column, tables in seen.items():
        where = tables[0] if len(tables) == 1 else f"{len(tables)} tables"
        items.append({"caption": column, "value": column, "score": 900,
                      "meta": f"{types[column].lower()} · {where}"})
    return items


def plain_chosen() -> bool:
    return bool(st.session_state.get(PLAIN_KEY)) or not component_available()


def render(schema: dict[str, list[tuple[str, str]]], scope: str) -> EditorState:
    """Draw the editor for ``scope`` (the dataset: its completions) and return its state."""
    state = st.session_state
    if plain_chosen():
        if state.get(_AREA_GEN_KEY) != generation() or AREA_KEY not in state:
            state[AREA_KEY] = text()
            state[_AREA_GEN_KEY] = generation()
        value = st.text_area("SQL (one read-only query)", key=AREA_KEY, height=180,
                             placeholder=PLACEHOLDER)
        state[TEXT_KEY] = value
        return EditorState(value)
    mounted_key = (scope, generation())
    if state.get(_MOUNTED_KEY, (None,))[0:2] != mounted_key:
        state[_MOUNTED_KEY] = (*mounted_key, text())
    st.caption("SQL (one read-only query) · Ctrl+Enter (⌘+Enter) runs · names complete as "
               "you type")
    response = _code_editor(
        state[_MOUNTED_KEY][2], lang="sql", theme="default", shortcuts="vscode",
        height=[8, 24], focus=generation() > 0, completions=completions(schema),
        # blur too: clicking Run right after typing sends the latest text with the click
        response_mode=["debounce", "blur"],
        ghost_text="" if state[_MOUNTED_KEY][2] else PLACEHOLDER,
        options={"showLineNumbers": True, "wrap": True, "enableLiveAutocompletion": True},
        props={"style": {"borderRadius": "6px"}},
        key=f"ws_editor_{scope}_{generation()}")
    return apply_event(state, response)
