"""The workspace's schema browser: every table of the team's extract at once with row counts,
a searchable list of every column with its type, classification and data-card description, a
click on a row inserts the name into the editor, and a concept search where the extract has an
OMOP ``concept`` table. Rendering only; the services decide what the grant shows."""

from __future__ import annotations

from typing import Any

import streamlit as st

from portal.errors import PortalError
from portal.identity import Principal
from portal.services import workspace as ws_service
from portal.services.context import Context
from portal.ui import editor
from portal.ui.cache import cached
from portal.ui.errors import show_error

_CONCEPTS_KEY = "_ws_concepts"


def overview(ctx: Context, me: Principal, dataset_id: str, grant_label: str
             ) -> dict[str, Any] | None:
    """The extract's tables (remembered briefly per person and grant state: a revoked or expired
    grant changes the label, so the service is asked again and refuses). None after showing
    the refusal."""
    try:
        return cached(me, ("schema_overview", dataset_id, grant_label), 60,
                      lambda: ws_service.schema_overview(ctx, me, dataset_id))
    except PortalError as exc:
        show_error(exc)
        return None


def plain_schema(found: dict[str, Any] | None) -> dict[str, list[tuple[str, str]]]:
    """{table: [(column, type)]} for the editor's completions."""
    if not found:
        return {}
    return {t["name"]: [(c["name"], c["type"]) for c in t["columns"]] for t in found["tables"]}


def matches(found: dict[str, Any], search: str) -> tuple[list[dict], list[dict]]:
    """Tables and columns whose name, description or classification contain ``search``
    (case-insensitive; everything when empty). A table matches when it or a column does."""
    needle = search.strip().lower()
    tables, columns = [], []
    for table in found["tables"]:
        table_hit = not needle or needle in table["name"].lower() or needle in (
            table["description"] or "").lower()
        hits = [c for c in table["columns"] if table_hit or needle in " ".join(
            (c["name"], c["description"] or "", c["classification"] or "")).lower()]
        if table_hit or hits:
            tables.append(table)
            columns.extend({"table": table["name"], **c} for c in hits)
    return tables, columns


def _row_label(rows: int | None, result_mode: str) -> str:
    if rows is None:
        return "few"
    return f"≈{rows:,}" if result_mode == "aggregate" else f"{rows:,}"


def _on_pick(key: str, names: list[str]) -> None:
    picked = st.session_state.get(key)
    selected = list(getattr(getattr(picked, "selection", None), "rows", []) or [])
    if selected and 0 <= selected[0] < len(names):
        editor.insert(names[selected[0]])


def browser(ctx: Context, me: Principal, dataset_id: str, found: dict[str, Any] | None) -> None:
    st.subheader("Schema")
    if not found:
        return
    tables = found["tables"]
    st.caption(f"{len(tables)} tables in your governed extract ({found['tier']} tier). "
               "Click a row to insert its name into the editor.")
    search = st.text_input("Search tables and columns", key="ws_schema_search",
                           placeholder="e.g. gender, drug, date")
    shown_tables, shown_columns = matches(found, search)
    gen = editor.generation()
    table_key, column_key = f"ws_tables_{gen}", f"ws_columns_{gen}"
    st.dataframe(
        [{"table": t["name"], "rows": _row_label(t["rows"], found["result_mode"]),
          "columns": len(t["columns"]), "description": t["description"]} for t in shown_tables],
        hide_index=True, width="stretch", height=min(38 + 35 * len(shown_tables), 320),
        key=table_key, on_select=lambda: _on_pick(table_key, [t["name"] for t in shown_tables]),
        selection_mode="single-row")
    st.dataframe(
        [{"column": c["name"], "table": c["table"], "type": c["type"],
          "classification": c["classification"], "description": c["description"]}
         for c in shown_columns],
        hide_index=True, width="stretch", height=min(38 + 35 * len(shown_columns), 420),
        key=column_key, on_select=lambda: _on_pick(column_key, [c["name"] for c in shown_columns]),
        selection_mode="single-row")
    if any(t["name"] == "concept" for t in tables):
        concept_search(ctx, me, dataset_id)


def concept_search(ctx: Context, me: Principal, dataset_id: str) -> None:
    """Search the extract's concept vocabulary; each search is audited once (reruns reuse the
    last answer kept in this session)."""
    with st.expander("Concept search", expanded=False):
        with st.form("ws_concept_form", border=False):
            text = st.text_input("Concept name, id or code", key="ws_concept_text",
                                 placeholder="e.g. hemorrhage, 192671")
            asked = st.form_submit_button("Search concepts")
        kept = st.session_state.get(_CONCEPTS_KEY)
        if asked:
            try:
                kept = (me.user_id, dataset_id, text,
                        ws_service.search_concepts(ctx, me, dataset_id, text))
            except PortalError as exc:
                kept = None
                show_error(exc)
            st.session_state[_CONCEPTS_KEY] = kept
        if not kept or kept[0] != me.user_id or kept[1] != dataset_id:
            return
        rows = kept[3]["rows"]
        if not rows:
            st.text(f"No concept matches {kept[2]!r}.")
            return
        shown = [{k: (str(v) if k == "concept_id" else v) for k, v in r.items()} for r in rows]
        key = f"ws_concepts_{editor.generation()}"
        st.dataframe(shown, hide_index=True, width="stretch", key=key,
                     on_select=lambda: _on_pick(key, [r["concept_id"] for r in shown]),
                     selection_mode="single-row")
        st.caption(f"{len(rows)} concept(s). Click a row to insert its id.")


def column_descriptions(found: dict[str, Any] | None) -> dict[str, str]:
    """Column name → data-card description (the first table's, where several share a name),
    for result header tooltips."""
    out: dict[str, str] = {}
    for table in (found or {}).get("tables", []):
        for column in table["columns"]:
            if column["description"]:
                out.setdefault(column["name"], column["description"])
    return out
