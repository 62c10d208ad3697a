"""CSV and Parquet export of tables shown in the browser. CSV is safe to open in a
spreadsheet: cells that a spreadsheet would run as a formula (starting with = + - @, tab or
carriage return) are prefixed with an apostrophe. No streamlit here, so the CLI could reuse
it.

Query results leave the platform only through :func:`result_download`: the file is made when
the Download button is clicked, after the grant and the tier's download rule are re-checked and
the download audited (``portal.services.query.download_result``). Grids never offer their own
export (``client.disableDataExport``; see ``portal.ui.workspace.show_result``)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portal.config import Settings
    from portal.identity import Principal

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


def result_download(settings: Settings, principal: Principal, dataset_id: str, result: Any,
                    fmt: str, make: Callable[[], str | bytes]) -> Callable[[], str | bytes]:
    """The ``data`` of a result's Download button: called only when it is clicked (Streamlit
    runs it on its own thread, so it opens its own store connection). It re-checks the grant
    and the tier's download rule at that moment and audits the download (``fmt``), then
    returns ``make()``; a refusal downloads a one-line text saying why instead of the rows."""

    def at_click() -> str | bytes:
        from portal.errors import UserError
        from portal.services import query
        from portal.services.context import Context

        ctx = Context.open(settings)
        try:
            query.download_result(ctx, principal, dataset_id, result, fmt)
        except UserError as exc:
            return f"Download refused ({exc.code}): {exc.message}\n"
        finally:
            ctx.close()
        return make()

    return at_click
