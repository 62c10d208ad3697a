"""CSV and Parquet export of tables shown in the browser. CSV is safe to open in a
spreadsheet: cells that a spreadsheet would run as a formula (starting with = + - @, tab or
carriage return) are prefixed with an apostrophe. No streamlit here, so the CLI could reuse
it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> str:
    """A cell as text that a spreadsheet shows literally."""
    if value is None:
        return ""
    text = neutral_text(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """Rows (dicts) as CSV text with a header, every cell neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([neutralise(row.get(c)) for c in columns])
    return buffer.getvalue()


def to_parquet(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> bytes:
    """Rows (dicts) as a Parquet file. A column keeps its type when all its values share one;
    a column mixing types (a ``[suppressed]`` marker among numbers) is written as text, so a
    suppressed cell is never a zero or a blank."""
    import polars as pl

    materialised = list(rows)
    data: dict[str, list[Any]] = {}
    for name in columns:
        values = [r.get(name) for r in materialised]
        kinds = {type(v) for v in values if v is not None}
        if len(kinds) > 1 or kinds & {dict, list}:
            values = [None if v is None else neutral_text(v) for v in values]
        data[name] = values
    buffer = io.BytesIO()
    pl.DataFrame(data, strict=False).write_parquet(buffer)
    return buffer.getvalue()


def neutral_text(value: Any) -> str:
    """A value as plain text (JSON for nested values), without spreadsheet neutralising."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)
