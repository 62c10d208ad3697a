"""CSV export of tables shown in the browser, safe to open in a spreadsheet: cells that a
spreadsheet would run as a formula (starting with = + - @, tab or carriage return) are prefixed
with an apostrophe. No streamlit here, so the CLI could reuse it."""

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
    text = value if isinstance(value, str) else (
        json.dumps(value, sort_keys=True, ensure_ascii=False) if isinstance(value, dict | list)
        else str(value))
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """Rows (dicts) as CSV text with a header, every cell neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([neutralise(row.get(c)) for c in columns])
    return buffer.getvalue()
