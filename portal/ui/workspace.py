"""Sections of the SQL workspace page (rendering only; every decision is the services')."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from portal.errors import PortalError
from portal.identity import Principal
from portal.services import query
from portal.services.context import Context
from portal.ui import editor, results
from portal.ui.csvexport import result_download, to_csv, to_parquet
from portal.ui.errors import show_error
from portal.ui.text import md_escape

RESULT_KEY = "_ws_result"
HISTORY_ROWS = 10


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


def run(ctx: Context, me: Principal, dataset_id: str, sql: str) -> None:
    """Run with visible progress; keep the result (with the SQL it answers) for this session
    and dataset. The result is kept before anything else is drawn: a rerun that interrupts
    this one (the editor sending its text) then finds it instead of losing it. A spinner, not
    ``st.status``: the status container sleeps 50 ms on entry and on exit, more than a light
    query costs; the result's caption gives its rows and time."""
    st.session_state.pop(RESULT_KEY, None)
    with st.spinner("Running query…", show_time=True):
        try:
            result = query.run_query(ctx, me, dataset_id, sql)
        except PortalError as exc:
            _keep(me, dataset_id, sql, exc)
            return
    _keep(me, dataset_id, sql, result)


def _keep(me: Principal, dataset_id: str, sql: str, outcome: Any) -> None:
    st.session_state[RESULT_KEY] = (me.user_id, dataset_id, sql, outcome)
    editor.ran()


def kept_result(me: Principal, dataset_id: str, sql: str) -> Any:
    """The result or error of the last run, if it answers exactly the editor's SQL on this
    dataset; editing the SQL clears a stale result or error."""
    kept = st.session_state.get(RESULT_KEY)
    if not kept or kept[0] != me.user_id or kept[1] != dataset_id:
        return None
    if kept[2] != sql:
        st.session_state.pop(RESULT_KEY, None)
        return None
    return kept[3]


def show_result(ctx: Context, me: Principal, dataset_id: str, sql: str,
                described: dict[str, str] | None = None) -> None:
    result = kept_result(me, dataset_id, sql)
    if result is None:
        return
    if isinstance(result, BaseException):
        show_error(result)
        return
    for level, sentence in results.notices(result):
        getattr(st, level)(sentence)
    rows = results.with_text_ids(results.display_rows(result))
    columns = results.display_columns(result)
    st.caption(f"{result.row_count} rows · tier {md_escape(result.tier)} · "
               f"{result.duration_ms:.0f} ms · query {result.query_id[:12]}")
    frame = pd.DataFrame(rows, columns=columns)
    helps = results.column_help(columns, described or {})
    if st.get_option("client.disableDataExport"):
        st.dataframe(frame, hide_index=True, width="stretch",
                     column_config={c: st.column_config.Column(c, help=h)
                                    for c, h in helps.items()})
    else:  # the grid's own toolbar would offer a CSV download: show a grid without one
        with st.container(height=420):
            st.table(frame)
    quick_chart(rows)
    exports(ctx, me, dataset_id, result, columns, rows)


def exports(ctx: Context, me: Principal, dataset_id: str, result: Any, columns: list[str],
            rows: list[dict]) -> None:
    """CSV and Parquet downloads, only where the tier's download rule allows this result; each
    click re-checks the grant and the rule and is audited (format, rows) before the file is
    made (:func:`portal.ui.csvexport.result_download`)."""
    if not query.can_download(ctx, me, dataset_id, result):
        st.caption("Your tier does not allow downloading results.")
        return
    name = f"{dataset_id}-{result.query_id}"
    cols = st.columns(2)
    for col, fmt, label, mime, make in (
            (cols[0], "csv", "Download CSV", "text/csv", lambda: to_csv(columns, rows)),
            (cols[1], "parquet", "Download Parquet", "application/vnd.apache.parquet",
             lambda: to_parquet(columns, rows))):
        col.download_button(label, result_download(ctx.settings, me, dataset_id, result, fmt,
                                                   make),
                            file_name=f"{name}.{fmt}", mime=mime,
                            key="ws_download" if fmt == "csv" else "ws_download_parquet",
                            on_click="ignore")


def quick_chart(rows: list[dict]) -> None:
    """A bar chart of two columns, drawn only when asked for (building it on every rerun
    would cost more than the rest of the page)."""
    numeric = results.numeric_columns(rows)
    if not rows or not numeric or len(rows[0]) < 2:
        return
    if not st.toggle("Quick chart", key="ws_chart"):
        return
    names = list(rows[0])
    cols = st.columns(2)
    x = cols[0].selectbox("X", names, key="ws_chart_x")
    y = cols[1].selectbox("Y", [n for n in numeric if n != x] or numeric, key="ws_chart_y")
    # Plain field names: the chart reads "count(*)" or "sum(x)" as an aggregate of a field
    data = pd.DataFrame([{"x": r[x], "y": r[y]} for r in rows if r[y] != results.SUPPRESSED])
    if not data.empty:
        st.bar_chart(data, x="x", y="y", x_label=x, y_label=y)


def _one_line(sql: str, width: int = 90) -> str:
    flat = " ".join(str(sql).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def saved_queries(ctx: Context, me: Principal, dataset_id: str, sql: str) -> None:
    """Saved queries of this dataset (the person's own and the team's shared ones), each loaded
    into the editor with one click; save the editor's query, shared with the team or not."""
    with st.expander("Saved queries", expanded=True):
        try:
            saved = query.list_saved_queries(ctx, me, dataset_id)
        except PortalError as exc:
            show_error(exc)
            saved = []
        for item in saved:
            cols = st.columns([5, 1, 1])
            whose = "yours" if item["mine"] else f"shared by {item['owner']}"
            shared = " · shared with your team" if item["mine"] and item["shared"] else ""
            cols[0].text(f"{item['name']} ({whose}{shared})\n{_one_line(item['sql_text'])}")
            cols[1].button("Load", key=f"ws_load_saved_{item['id']}", on_click=editor.load,
                           args=(item["sql_text"],))
            if item["mine"]:
                cols[2].button("Unshare" if item["shared"] else "Share",
                               key=f"ws_share_saved_{item['id']}", on_click=_share,
                               args=(ctx, me, item["id"], not item["shared"]))
        if not saved:
            st.text("No saved queries for this dataset yet.")
        cols = st.columns([3, 1, 1])
        name = cols[0].text_input("Save the editor's query as", key="ws_save_name")
        share = cols[1].checkbox("Share with my team", key="ws_save_shared")
        if cols[2].button("Save", key="ws_save"):
            try:
                query.save_query(ctx, me, dataset_id, name, sql, shared=share)
                st.success(f"Saved as {md_escape(name)}.")
            except PortalError as exc:
                show_error(exc)


def _share(ctx: Context, me: Principal, saved_id: int, shared: bool) -> None:
    try:
        query.share_saved_query(ctx, me, saved_id, shared)
    except PortalError as exc:
        show_error(exc)


def history(ctx: Context, me: Principal, dataset_id: str) -> None:
    """The person's recent queries on this dataset, each loaded into the editor with one
    click."""
    with st.expander("History"):
        try:
            past = [h for h in query.query_history(ctx, me, limit=50)
                    if h["dataset_id"] == dataset_id][:HISTORY_ROWS]
        except PortalError as exc:
            show_error(exc)
            return
        if not past:
            st.text("No queries on this dataset yet.")
        for item in past:
            cols = st.columns([5, 1])
            outcome = item["code"] or f"{item['rows_returned']} rows"
            cols[0].text(f"{item['started_at']} · {item['status']} · {outcome}\n"
                         f"{_one_line(item['sql_text'])}")
            cols[1].button("Load", key=f"ws_load_history_{item['query_id']}",
                           on_click=editor.load, args=(item["sql_text"],))
