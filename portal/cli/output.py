"""Printing results and errors in the CLI's formats (table, json, csv)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from portal.errors import ConfigError, PortalError

if TYPE_CHECKING:
    from portal.identity import Principal

FORMATS = ("table", "json", "csv")


def operator() -> Principal:
    """Who the CLI acts as without --user: the operator of this installation (who already holds
    the portal's home folder), actor ``cli-operator`` in the audit log. Not a member of staff:
    :mod:`portal.authz` lets the operator run maintenance only, never review or grant."""
    from portal.authz import OPERATOR

    return OPERATOR


def add_format(parser, choices: Sequence[str] = ("table", "json")) -> None:
    parser.add_argument("--format", choices=list(choices), default="table",
                        help="output format (default: table)")


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str, ensure_ascii=False)
    sys.stdout.write("\n")


def emit_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    text_rows = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in text_rows:
        for i, value in enumerate(row):
            widths[i] = min(max(widths[i], len(value)), 60)
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in text_rows:
        print("  ".join(v[:60].ljust(w) for v, w in zip(row, widths, strict=True)))


def emit_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    writer = csv.writer(sys.stdout)
    writer.writerow(columns)
    writer.writerows(rows)


def emit_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> None:
    if fmt == "json":
        emit_json([dict(zip(columns, row, strict=True)) for row in rows])
    elif fmt == "csv":
        emit_csv(columns, rows)
    else:
        emit_table(columns, rows)


def error(exc: PortalError, fmt: str) -> None:
    if fmt == "json":
        emit_json(exc.to_dict())
        return
    print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
    if isinstance(exc, ConfigError) and len(exc.problems) > 1:
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
