"""`portal datasets list | describe | build | check`.

Without ``--user`` the CLI acts as platform staff ("system"): it runs on the server, where its
operator can read PORTAL_HOME anyway. With ``--user EMAIL`` it shows what that user would see
(members get no release file locations and cannot build).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from portal.cli import args as types
from portal.cli import output
from portal.config import Settings
from portal.errors import ConfigError

if TYPE_CHECKING:
    from portal.identity import Principal
    from portal.services.context import Context


def _open(settings: Settings):
    """The catalog use cases and a store context (imported here: the builder loads DuckDB)."""
    from portal.services import catalog
    from portal.services.context import Context

    return catalog, Context.open(settings)


def register(sub: argparse._SubParsersAction) -> None:
    ds = sub.add_parser("datasets", help="the dataset catalog and its releases")
    ds_sub = ds.add_subparsers(dest="datasets_command", required=True)

    list_p = ds_sub.add_parser("list", help="list datasets and their current releases")
    _user(list_p)
    output.add_format(list_p)
    list_p.set_defaults(func=cmd_list)

    desc_p = ds_sub.add_parser("describe", help="a dataset's card, tables, columns and report")
    desc_p.add_argument("dataset")
    _user(desc_p)
    output.add_format(desc_p)
    desc_p.set_defaults(func=cmd_describe)

    build_p = ds_sub.add_parser("build", help="build de-identified releases (staff)")
    build_p.add_argument("datasets", nargs="*", metavar="ID",
                         help="dataset ids (default: every bundled dataset)")
    build_p.add_argument("--persons", type=types.whole_number, default=None,
                         help="omop_synth size (default from its card: 20,000)")
    _user(build_p)
    output.add_format(build_p)
    build_p.set_defaults(func=cmd_build)

    check_p = ds_sub.add_parser("check", help="validate dataset cards against their sources")
    check_p.add_argument("datasets", nargs="*", metavar="ID")
    output.add_format(check_p)
    check_p.set_defaults(func=cmd_check)


def _user(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", help="act as this portal user (e-mail); default: staff")


def _principal(ctx: Context, args: argparse.Namespace) -> Principal:
    from portal.identity import principal_for_email

    return principal_for_email(ctx.conn, args.user) if args.user else output.operator()


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    catalog, ctx = _open(settings)
    try:
        items = catalog.list_datasets(ctx, _principal(ctx, args))
    finally:
        ctx.close()
    if args.format == "json":
        output.emit_json(items)
        return 0
    columns = ["id", "title", "release_version", "persons", "tables", "rows", "status"]
    output.emit_rows(columns, [[i[c] for c in columns] for i in items], args.format)
    return 0


def cmd_describe(args: argparse.Namespace, settings: Settings) -> int:
    catalog, ctx = _open(settings)
    try:
        card = catalog.describe_dataset(ctx, _principal(ctx, args), args.dataset)
    finally:
        ctx.close()
    if args.format == "json":
        output.emit_json(card)
        return 0
    _print_card(card)
    return 0


def _print_card(card: dict) -> None:
    print(f"{card['title']} ({card['id']})")
    print(f"standard: {card['standard']}")
    print(card["description"])
    release = card.get("release")
    if release:
        print(f"release {release['version']} built {release['built_at']}: "
              f"{release['persons']['dev']:,} dev persons, {release['persons']['holdout']:,} "
              f"held out")
        for key in ("path", "holdout_path"):
            if key in release:
                print(f"{key}: {release[key]}")
    else:
        print("no release yet (run `portal datasets build`)")
    print()
    for table in card["tables"]:
        rows = "" if table["dev_rows"] is None else f" ({table['dev_rows']:,} dev rows)"
        print(f"{table['name']}{rows}: {table['description']}")
        for col in table["columns"]:
            print(f"    {col['name']:<32} {col['type']:<8} {col['classification']:<18} "
                  f"{col['transform']}")
    if card.get("report"):
        print()
        from portal.services.catalog import report_summary

        print(report_summary(card["report"]))


def cmd_build(args: argparse.Namespace, settings: Settings) -> int:
    catalog, ctx = _open(settings)
    try:
        results = catalog.build_releases(
            ctx, _principal(ctx, args), args.datasets, persons=args.persons,
            progress=lambda message: print(message, file=sys.stderr, flush=True))
    finally:
        ctx.close()
    if args.format == "json":
        output.emit_json(results)
        return 0
    columns = ["dataset", "version", "rows", "seconds"]
    output.emit_rows(columns, [[r[c] for c in columns] for r in results], args.format)
    return 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    catalog, ctx = _open(settings)
    try:
        results = catalog.check_manifests(ctx, args.datasets)
    finally:
        ctx.close()
    problems = [p for r in results for p in r["problems"]]
    if args.format == "json" and not problems:
        output.emit_json(results)
    elif not problems:
        for r in results:
            print(f"{r['id']}: ok")
    if problems:
        raise ConfigError(problems=problems, code="invalid_manifest")
    return 0
