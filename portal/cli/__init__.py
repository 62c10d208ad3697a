"""The `portal` command: the same use cases as the browser, for staff and automation.

Exit codes: 0 success; 2 refused (a user error: denied, rejected, not found, invalid); 1 internal
failure. With ``--format json`` errors are printed on standard output as
``{"error": {"code": ..., "message": ...}}`` and never contain internals.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from portal.cli import admin, output
from portal.config import Settings
from portal.errors import PortalError, public_error

log = logging.getLogger("portal")

# Each area adds its commands through a module with `register(subparsers)`; every command sets
# `func(args, settings) -> int`.
AREAS = ["admin", "datasets", "policies", "access", "query", "sandbox", "worker", "tokens", "api"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portal", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    import importlib

    for area in AREAS:
        module = admin if area == "admin" else _optional(importlib, area)
        if module is not None:
            module.register(sub)
    return parser


def _optional(importlib, area: str):
    try:
        return importlib.import_module(f"portal.cli.{area}")
    except ModuleNotFoundError as exc:
        if exc.name == f"portal.cli.{area}":
            return None
        raise


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fmt = getattr(args, "format", "table")
    try:
        settings = Settings.from_env(os.environ if environ is None else environ)
        return int(args.func(args, settings) or 0)
    except PortalError as exc:
        shown = public_error(exc)
        if shown is not exc:
            log.exception("internal error")
        output.error(shown, fmt)
        return shown.exit_code
    except Exception as exc:  # never show internals to the caller
        log.exception("internal error")
        output.error(public_error(exc), fmt)
        return 1


if __name__ == "__main__":
    sys.exit(main())
