"""`portal query --user EMAIL --dataset ID --sql SQL [--format json|csv|table]`.

JSON contract (stable; documented in access_policies/README.md): success exits 0 with
``{"columns", "rows", "row_count", "truncated", "suppressed", "query_id", ...}``; a refusal exits
2 and an internal failure 1, both with ``{"error": {"code", "message"}}`` on standard output.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from portal.cli import output
from portal.config import Settings
from portal.errors import InvalidInput

if TYPE_CHECKING:
    from portal.query.executor import QueryResult

MAX_SQL_BYTES = 64 * 1024


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("query", help="run governed SQL on a dataset as a user")
    parser.add_argument("--user", required=True, help="e-mail of the portal user")
    parser.add_argument("--dataset", required=True, help="dataset id, e.g. eunomia")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sql", help="the SQL text ('-' reads standard input)")
    source.add_argument("--history", action="store_true", help="list the user's recent queries")
    output.add_format(parser, ("table", "json", "csv"))
    parser.set_defaults(func=cmd_query)


def _sql_text(raw: str) -> str:
    """The SQL argument, or standard input for ``-`` (UTF-8, at most 64 KB plus one byte so
    that the size check downstream sees an oversized text). Raises InvalidInput."""
    if raw != "-":
        return raw
    data = sys.stdin.buffer.read(MAX_SQL_BYTES + 1)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        if len(data) > MAX_SQL_BYTES:  # cut inside a character: still oversized, refused so
            return data.decode("utf-8", "replace")
        raise InvalidInput("invalid_sql_encoding", "The SQL on standard input is not valid "
                                                   "UTF-8 text.") from None


def cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    if args.sql is not None and not settings.query_allow_unisolated:
        from portal import isolation

        isolation.prefetch()  # the jail probe runs while the engine loads and the store opens
    from portal.identity import principal_for_email
    from portal.services.context import Context

    ctx = Context.open(settings)
    try:
        principal = principal_for_email(ctx.conn, args.user)
        from portal.services import query as query_services  # the engine, once it is needed

        if args.history:
            history = query_services.query_history(ctx, principal)
            if args.format == "json":
                output.emit_json(history)
            else:
                columns = ["started_at", "dataset_id", "tier", "status", "code",
                           "rows_returned", "suppressed", "sql_text"]
                output.emit_rows(columns, [[h[c] for c in columns] for h in history],
                                 args.format)
            return 0
        if args.sql is None:
            raise InvalidInput("missing_sql", "Give --sql.")
        result = query_services.run_query(ctx, principal, args.dataset, _sql_text(args.sql))
    finally:
        ctx.close()
    if args.format == "json":
        output.emit_json(result.to_json())
    elif args.format == "csv":
        output.emit_csv(*_shown(result))
    else:
        output.emit_table(*_shown(result))
        notes = [f"{result.row_count} row(s)"]
        if result.privacy:
            notes.append("differentially private, ± 95% half-widths; " + (
                "replayed at no cost" if result.privacy.get("cached") else
                f"cost ρ {result.privacy['cost_rho']:g}") +
                f", {result.privacy.get('queries_left')} queries left")
        if result.truncated:
            notes.append("TRUNCATED at the tier's row limit")
        if result.suppressed or result.suppressed_cells:
            notes.append(f"{result.suppressed} row(s) and {result.suppressed_cells} cell(s) "
                         f"suppressed (too few persons)")
        print(f"-- {'; '.join(notes)}; query {result.query_id}")
    return 0


def _shown(result: QueryResult) -> tuple[list[str], list[list[object]]]:
    """Columns and rows to print: in DP tiers each estimate is followed by its half-width."""
    if not result.half_widths:
        return result.columns, _marked(result)
    from portal.ui.results import display_columns, display_rows

    return display_columns(result), [list(row.values()) for row in display_rows(result)]


def _marked(result: QueryResult) -> list[list[object]]:
    """Rows with suppressed values written as 'suppressed' (never blank, never 0)."""
    rows = []
    for values, marks in zip(result.rows, result.cell_suppressed, strict=False):
        rows.append(["suppressed" if mark else value
                     for value, mark in zip(values, marks, strict=False)])
    return rows
