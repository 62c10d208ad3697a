"""The `portal` command: the same use cases as the browser, for staff and automation.

Exit codes: 0 success; 2 refused (a user error: denied, rejected, not found, invalid — bad
arguments included); 1 internal failure (a generic message and a reference; the cause goes to
the audit log and ``$PORTAL_HOME/logs/cli.log``); 3 a verification that does not hold. With
``--format json`` errors are printed on standard output as ``{"error": {"code": ...,
"message": ...}}`` and never contain internals. Every refused or failed command writes one audit
event (``portal.services.attempts``).

Area modules import the use cases they call inside their command functions, so that
``portal --help`` and every command start without loading what they do not use.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from portal.cli import output
from portal.config import Settings
from portal.errors import InvalidInput, PortalError, UserError, public_error

log = logging.getLogger("portal")
EXIT_BROKEN_PIPE = 141  # as for a process killed by SIGPIPE: the reader stopped reading

# Each area adds its commands through a module with `register(subparsers)`; every command sets
# `func(args, settings) -> int`, and may set `audit_action` (default: "cli.<command path>").
AREAS = ["admin", "datasets", "policies", "access", "query", "sandbox", "worker", "tokens", "api"]


class UsageError(InvalidInput):
    """The command line itself is wrong (unknown command, missing or malformed argument)."""


class _Parser(argparse.ArgumentParser):
    """Argument errors become one clear line and exit 2, not argparse's usage dump."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError("invalid_arguments", f"{self.prog}: {message} (see `{self.prog} "
                                              f"--help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="portal", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)
    import importlib

    for area in AREAS:
        importlib.import_module(f"portal.cli.{area}").register(sub)
    _name_commands(parser, "")
    return parser


def _name_commands(parser: argparse.ArgumentParser, path: str) -> None:
    """Give every leaf command its full name (``cli_command``) for the audit log."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        parser.set_defaults(cli_command=path)
    for action in subs:
        for name, child in action.choices.items():
            _name_commands(child, f"{path} {name}".strip())


def leaf_commands() -> list[str]:
    """Every command the CLI has, by full name (``sandbox status``...)."""
    found: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found.append(path)
        for action in subs:
            for name, child in action.choices.items():
                walk(child, f"{path} {name}".strip())

    walk(build_parser(), "")
    return found


def _check_text(argv: Sequence[str]) -> None:
    """Arguments are text: bytes that are not UTF-8 (which Python hands over as lone
    surrogates) are refused, naming the argument's position, never echoing it."""
    for position, value in enumerate(argv, start=1):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput("invalid_argument_encoding",
                               f"Argument {position} is not valid UTF-8 text.") from None


def _format_hint(argv: Sequence[str]) -> str:
    pairs = zip(argv, [*argv[1:], ""], strict=False)
    return "json" if any((a, b) == ("--format", "json") or a == "--format=json"
                         for a, b in pairs) else "table"


def _actor(args: argparse.Namespace) -> str:
    who = getattr(args, "user", None) or getattr(args, "by", None)
    return str(who).strip().lower()[:254] if who else "cli"


class _LazyStore:
    """The store connection a refusal is recorded with, opened only if one must be."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.conn = settings, None

    def __call__(self):
        if self.conn is None:
            from portal.store.db import open_store

            self.conn = open_store(self.settings)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from portal.services.attempts import attempt

    store = _LazyStore(settings)
    command = getattr(args, "cli_command", "") or "usage"
    action = getattr(args, "audit_action", None) or f"cli.{command.replace(' ', '.')}"
    try:
        with attempt(store, actor=_actor(args), action=action, details={"command": command},
                     ignore=(BrokenPipeError,)):
            return int(args.func(args, settings) or 0)
    finally:
        store.close()


def _audit_bad_command_line(environ: Mapping[str, str], exc: PortalError) -> None:
    """Record a refused command line in an existing installation (a mistyped command on a
    machine without one creates nothing)."""
    try:
        settings = Settings.from_env(environ)
        if not settings.store_path.exists():
            return
        from portal.services.attempts import attempt

        store = _LazyStore(settings)
        try:
            with attempt(store, actor="cli", action="cli.usage"):
                raise exc
        except PortalError:
            pass
        finally:
            store.close()
    except Exception:  # auditing a bad command line must not hide the refusal itself
        log.debug("could not audit a refused command line", exc_info=True)


class _HomeLog(logging.FileHandler):
    """A log file whose folder is made on the first record (a command that logs nothing
    creates nothing)."""

    def _open(self):  # type: ignore[override]
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


@contextmanager
def _log_to_home(environ: Mapping[str, str]) -> Iterator[None]:
    """While a command runs, the portal's log (internal errors, with their reference) goes to
    ``$PORTAL_HOME/logs/cli.log``, not to the terminal."""
    handler: logging.Handler = logging.NullHandler()
    with suppress(PortalError):
        handler = _HomeLog(Settings.from_env(environ).home / "logs" / "cli.log", delay=True,
                           encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    propagate = log.propagate
    log.addHandler(handler)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()
        log.propagate = propagate


def _main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    fmt = _format_hint(argv)
    try:
        try:
            _check_text(argv)
            args = build_parser().parse_args(argv)
        except UserError as exc:
            _audit_bad_command_line(environ, exc)
            raise
        fmt = getattr(args, "format", fmt)
        return _run(args, Settings.from_env(environ))
    except PortalError as exc:
        shown = public_error(exc)
        if not getattr(exc, "shown", False):  # a command that printed its own report of it
            output.error(shown, fmt)
        return shown.exit_code
    except Exception as exc:  # never show internals to the caller
        log.exception("internal error")
        output.error(public_error(exc), fmt)
        return 1


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one command. ``argv`` defaults to ``sys.argv[1:]``, ``environ`` to the process's."""
    try:
        env = os.environ if environ is None else environ
        with _log_to_home(env):
            code = _main(sys.argv[1:] if argv is None else list(argv), env)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader (`portal ... | head`) went away: stop quietly, and keep the interpreter
        # from failing again when it flushes standard output at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
