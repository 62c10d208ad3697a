"""CSV export of tables shown in the browser, safe to open in a spreadsheet: cells that a
spreadsheet would run as a formula (starting with = + - @, tab or carriage return) are prefixed
with an apostrophe. No streamlit here, so the CLI could reuse it.

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


def result_download(settings: Settings, principal: Principal, dataset_id: str,
                    result: Any) -> Callable[[], str]:
    """The ``data`` of a result's Download button: called only when it is clicked (Streamlit
    runs it on its own thread, so it opens its own store connection). It re-checks the grant
    and the tier's download rule at that moment and audits the download; a refusal downloads
    a one-line file saying why instead of the rows."""

    def at_click() -> str:
        from portal.errors import UserError
        from portal.services import query
        from portal.services.context import Context
        from portal.ui.results import display_rows, unique_columns

        ctx = Context.open(settings)
        try:
            allowed = query.download_result(ctx, principal, dataset_id, result)
        except UserError as exc:
            return f"Download refused ({exc.code}): {exc.message}\n"
        finally:
            ctx.close()
        return to_csv(unique_columns(list(allowed.columns)), display_rows(allowed))

    return at_click
