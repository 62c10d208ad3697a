"""Turning a governed query result into what the grid shows (no streamlit here, so it is
tested without it): unique column names, suppressed cells marked (never shown as 0 or blank),
and the notices that make truncation and suppression visible."""

from __future__ import annotations

from typing import Any

SUPPRESSED = "[suppressed]"


def unique_columns(columns: list[str]) -> list[str]:
    """Column names made unique for the grid (``count``, ``count (2)``, ...)."""
    seen: dict[str, int] = {}
    names = []
    for name in columns:
        label = str(name) or "?"
        seen[label] = seen.get(label, 0) + 1
        names.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return names


def display_rows(result: Any) -> list[dict[str, Any]]:
    """Rows as dicts keyed by unique column names; suppressed rows and cells read
    ``[suppressed]``."""
    names = unique_columns(list(result.columns))
    shown = []
    for i, row in enumerate(result.rows):
        row_hidden = bool(result.row_suppressed[i]) if i < len(result.row_suppressed) else False
        cells = result.cell_suppressed[i] if i < len(result.cell_suppressed) else []
        values = {}
        for j, value in enumerate(row):
            hidden = row_hidden or (j < len(cells) and bool(cells[j]))
            values[names[j]] = SUPPRESSED if hidden else value
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
    if result.result_mode == "aggregate":
        found.append(("info", "Aggregate tier: counts and sums are rounded."))
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
