"""Sections of the SQL workspace page (rendering only; every decision is the services')."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from portal.errors import PortalError
from portal.identity import Principal
from portal.services import query
from portal.services.context import Context
from portal.ui import results
from portal.ui.cache import cached
from portal.ui.csvexport import result_download
from portal.ui.errors import show_error
from portal.ui.text import md_escape

EDITOR_KEY = "ws_sql"
RESULT_KEY = "_ws_result"


def dataset_labels(grants: list[dict]) -> dict[str, str]:
    """Each dataset the team ever held a grant for → a label with its latest grant's state
    (the grants come newest first; an active one wins)."""
    latest: dict[str, dict] = {}
    for grant in grants:
        kept = latest.get(grant["dataset_id"])
        if kept is None or (grant["effective_status"] == "active"
                            and kept["effective_status"] != "active"):
            latest[grant["dataset_id"]] = grant
    return {
        dataset: f"{dataset} · {g['tier']} · " + (
            f"{g['days_left']} days left" if g["effective_status"] == "active"
            else g["effective_status"])
        for dataset, g in sorted(latest.items(), key=lambda item: (
            item[1]["effective_status"] != "active", item[0]))
    }


def with_linked_dataset(labels: dict[str, str], linked: str | None) -> list[str]:
    """The dataset choices, with a deep-linked dataset first (even one without a grant: the
    services refuse it, audited, with a clear reason)."""
    options = list(labels)
    if linked:
        linked = str(linked)[:64]
        options = [linked] + [o for o in options if o != linked]
    return options


def schema_browser(ctx: Context, me: Principal, dataset_id: str, grant_label: str) -> None:
    """Exactly the tables and columns the team's extract holds (remembered briefly per person
    and grant state: a revoked or expired grant changes the label, so the service is asked
    again and refuses)."""
    st.subheader("Schema")
    try:
        schema = cached(me, ("schema", dataset_id, grant_label), 60,
                        lambda: query.schema_for(ctx, me, dataset_id))
    except PortalError as exc:
        show_error(exc)
        return
    st.caption(f"{len(schema)} tables in your governed extract.")
    table = st.selectbox("Table", list(schema), key="ws_schema_table")
    if table is not None:
        st.dataframe([{"column": c, "type": t} for c, t in schema[table]], hide_index=True,
                     width="stretch", height=min(38 + 35 * len(schema[table]), 420))


def saved_picker(ctx: Context, me: Principal, dataset_id: str) -> None:
    """Load a saved query into the editor (before the editor widget is created)."""
    saved = query.list_saved_queries(ctx, me, dataset_id)
    if not saved:
        return
    by_name = {s["name"]: s["sql_text"] for s in saved}
    cols = st.columns([3, 1])
    name = cols[0].selectbox("Saved queries", list(by_name), key="ws_saved")
    if cols[1].button("Load", key="ws_load"):
        st.session_state[EDITOR_KEY] = by_name[name]


def run(ctx: Context, me: Principal, dataset_id: str, sql: str) -> None:
    """Run with visible progress; keep the result for this session and dataset."""
    st.session_state.pop(RESULT_KEY, None)
    with st.status("Running query…", expanded=False) as status:
        try:
            result = query.run_query(ctx, me, dataset_id, sql)
        except PortalError as exc:
            status.update(label="Query refused", state="error")
            st.session_state[RESULT_KEY] = (me.user_id, dataset_id, exc)
            return
        status.update(label=f"Done: {result.row_count} rows in {result.duration_ms:.0f} ms",
                      state="complete")
    st.session_state[RESULT_KEY] = (me.user_id, dataset_id, result)


def show_result(ctx: Context, me: Principal, dataset_id: str) -> None:
    kept = st.session_state.get(RESULT_KEY)
    if not kept or kept[0] != me.user_id or kept[1] != dataset_id:
        return
    result = kept[2]
    if isinstance(result, BaseException):
        show_error(result)
        return
    for level, sentence in results.notices(result):
        getattr(st, level)(sentence)
    rows = results.display_rows(result)
    st.caption(f"{result.row_count} rows · tier {md_escape(result.tier)} · "
               f"{result.duration_ms:.0f} ms · query {result.query_id[:12]}")
    frame = pd.DataFrame(rows, columns=results.unique_columns(list(result.columns)))
    if st.get_option("client.disableDataExport"):
        st.dataframe(frame, hide_index=True, width="stretch")
    else:  # the grid's own toolbar would offer a CSV download: show a grid without one
        with st.container(height=420):
            st.table(frame)
    quick_chart(rows)
    if query.can_download(ctx, me, dataset_id, result):
        st.download_button("Download CSV", result_download(ctx.settings, me, dataset_id, result),
                           file_name=f"{dataset_id}-{result.query_id}.csv", mime="text/csv",
                           key="ws_download", on_click="ignore")
    else:
        st.caption("Your tier does not allow downloading results.")


def quick_chart(rows: list[dict]) -> None:
    numeric = results.numeric_columns(rows)
    if not rows or not numeric or len(rows[0]) < 2:
        return
    with st.expander("Quick chart"):
        names = list(rows[0])
        x = st.selectbox("X", names, key="ws_chart_x")
        y = st.selectbox("Y", [n for n in numeric if n != x] or numeric, key="ws_chart_y")
        data = pd.DataFrame([r for r in rows if r[y] != results.SUPPRESSED])
        if not data.empty:
            st.bar_chart(data, x=x, y=y)


def history(ctx: Context, me: Principal, dataset_id: str, sql: str) -> None:
    with st.expander("History and saved queries"):
        past = query.query_history(ctx, me, limit=20)
        if past:
            st.dataframe(past, hide_index=True, width="stretch")
        else:
            st.text("No queries yet.")
        cols = st.columns([3, 1])
        name = cols[0].text_input("Save the editor's query as", key="ws_save_name")
        if cols[1].button("Save", key="ws_save"):
            try:
                query.save_query(ctx, me, dataset_id, name, sql)
                st.success(f"Saved as {md_escape(name)}.")
            except PortalError as exc:
                show_error(exc)
