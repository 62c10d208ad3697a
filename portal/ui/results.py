"""Turning a governed query result into what the grid shows (no streamlit here, so it is
tested without it): unique column names, suppressed cells marked (never shown as 0 or blank),
and the notices that make truncation and suppression visible."""

from __future__ import annotations

from typing import Any

SUPPRESSED = "[suppressed]"


# DuckDB's names for unnamed expressions that read badly in a header.
_READABLE = {"count_star()": "count(*)"}


def unique_columns(columns: list[str]) -> list[str]:
    """Column names made readable and unique for the grid (``count_star()`` reads
    ``count(*)``; repeats become ``count (2)``, ...)."""
    seen: dict[str, int] = {}
    names = []
    for name in columns:
        label = _READABLE.get(str(name), str(name)) or "?"
        seen[label] = seen.get(label, 0) + 1
        names.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return names


HALF_WIDTH = " ± (95%)"


def display_columns(result: Any) -> list[str]:
    """The grid's columns: the result's (made unique), and in DP tiers after each estimate its
    95% half-width (``n ± (95%)``)."""
    names = unique_columns(list(result.columns))
    widths = getattr(result, "half_widths", None)
    if not widths:
        return names
    shown = []
    for j, name in enumerate(names):
        shown.append(name)
        if any(row[j] is not None for row in widths if j < len(row)):
            shown.append(name + HALF_WIDTH)
    return shown


def display_rows(result: Any) -> list[dict[str, Any]]:
    """Rows as dicts keyed by :func:`display_columns`; suppressed rows and cells read
    ``[suppressed]``; DP estimates are followed by their half-width."""
    names = unique_columns(list(result.columns))
    columns = set(display_columns(result))
    widths = getattr(result, "half_widths", None) or []
    shown = []
    for i, row in enumerate(result.rows):
        row_hidden = bool(result.row_suppressed[i]) if i < len(result.row_suppressed) else False
        cells = result.cell_suppressed[i] if i < len(result.cell_suppressed) else []
        values = {}
        for j, value in enumerate(row):
            hidden = row_hidden or (j < len(cells) and bool(cells[j]))
            values[names[j]] = SUPPRESSED if hidden else value
            if names[j] + HALF_WIDTH in columns:
                width = widths[i][j] if i < len(widths) and j < len(widths[i]) else None
                values[names[j] + HALF_WIDTH] = None if width is None else round(width, 2)
        shown.append(values)
    return shown


def notices(result: Any, max_rows: int | None = None) -> list[tuple[str, str]]:
    """(level, sentence) pairs describing truncation and suppression; level is ``warning`` or
    ``info``. Truncation is never silent."""
    found: list[tuple[str, str]] = []
    if result.truncated:
        limit = f" (the tier's limit is {max_rows} rows)" if max_rows else ""
        found.append(("warning", f"Truncated: showing the first {len(result.rows)} rows"
                                 f"{limit}; the query returned more."))
    if result.suppressed:
        found.append(("info", f"{result.suppressed} row(s) suppressed: each is backed by too few "
                              "persons. Their values are hidden, not zero."))
    if result.suppressed_cells:
        found.append(("info", f"{result.suppressed_cells} cell(s) suppressed: backed by too few "
                              "persons."))
    privacy = getattr(result, "privacy", None)
    if privacy:
        cost = ("replayed from your team's earlier identical query, at no cost"
                if privacy.get("cached") else f"cost ρ {privacy.get('cost_rho', 0):g}")
        found.append(("info", "Differentially private: each estimate is shown with its 95% "
                              f"half-width (noise only). This answer {cost}; "
                              f"{privacy.get('queries_left', 0)} queries (ρ "
                              f"{privacy.get('left_rho', 0):g}) left on this dataset."))
    elif result.result_mode == "aggregate":
        found.append(("info", "Aggregate tier: exact aggregates, counts and sums are rounded."))
    return found


def numeric_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Columns whose non-suppressed values are all numbers (for the quick chart)."""
    if not rows:
        return []
    names = list(rows[0])
    return [n for n in names
            if any(isinstance(r[n], int | float) and not isinstance(r[n], bool) for r in rows)
            and all(r[n] is None or r[n] == SUPPRESSED
                    or (isinstance(r[n], int | float) and not isinstance(r[n], bool))
                    for r in rows)]


JS_SAFE_INTEGER = 2**53 - 1


def is_id_column(name: str) -> bool:
    lowered = name.lower()
    return lowered == "id" or lowered.endswith("_id") or lowered.endswith(" id")


def with_text_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with identifiers as text: every integer in an id column (``id``, ``*_id``) and any
    integer a browser cannot hold exactly (beyond 2^53), so the grid shows the digits instead
    of a rounded number or a "larger than 2^53" marker."""
    if not rows:
        return rows
    names = list(rows[0])
    id_columns = {n for n in names if is_id_column(str(n))}
    out = []
    for row in rows:
        out.append({k: (str(v) if isinstance(v, int) and not isinstance(v, bool) and (
            k in id_columns or abs(v) > JS_SAFE_INTEGER) else v) for k, v in row.items()})
    return out


def column_help(columns: list[str], described: dict[str, str]) -> dict[str, str]:
    """Column name → its data-card description, for the grid's header tooltips (a result column
    named like an extract column gets that column's description)."""
    return {c: described[c] for c in columns if described.get(c)}
