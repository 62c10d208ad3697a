"""Plain factory functions for tests (no hidden fixture state)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from portal.catalog.releases import Release, current_release, register_release
from portal.identity import Principal, principal_for_email
from portal.services.context import Context
from portal.store import people
from portal.store.db import transaction


def make_team(ctx: Context, slug: str = "acme-health", name: str | None = None) -> int:
    with transaction(ctx.conn):
        return people.ensure_team(ctx.conn, slug, name or slug.title())


def make_user(ctx: Context, email: str, role: str = "member", team: str | None = None,
              status: str = "active") -> Principal:
    with transaction(ctx.conn):
        user_id = people.ensure_user(ctx.conn, email=email, role=role, status=status)
        if team:
            team_id = people.ensure_team(ctx.conn, team, team.title())
            people.set_membership(ctx.conn, user_id, team_id)
    if status != "active":
        from portal.identity import principal_from_row
        return principal_from_row(ctx.conn, people.get_user_by_email(ctx.conn, email))
    return principal_for_email(ctx.conn, email)


def make_release(ctx: Context, dataset_id: str, dev_sql: dict[str, str],
                 holdout_sql: dict[str, str] | None = None,
                 person_columns: dict[str, str | None] | None = None,
                 classifications: dict[str, str] | None = None,
                 version: str = "v1",
                 dp_columns: dict[str, dict[str, Any]] | None = None) -> Release:
    """Write a small release directly (bypassing the builder) for tests of code that consumes
    releases. ``dev_sql`` maps table name → a DuckDB SELECT producing its rows; ``dp_columns``
    maps a column name → its ``dp_bounds``/``dp_keys`` card entries (in every table)."""
    holdout_sql = holdout_sql or {}
    person_columns = person_columns or {}
    classifications = classifications or {}
    rel_dir = Path(dataset_id) / version
    directory = ctx.settings.releases_dir / rel_dir
    directory.mkdir(parents=True, exist_ok=True)
    card: dict[str, Any] = {"dataset": dataset_id, "version": version, "tables": {}}
    for part, sqls in (("dev", dev_sql), ("holdout", holdout_sql)):
        con = duckdb.connect(str(directory / f"{part}.duckdb"))
        for table, sql in dev_sql.items():
            source = sqls.get(table, f"SELECT * FROM ({dev_sql[table]}) LIMIT 0")
            con.execute(f'CREATE TABLE "{table}" AS {source}')
        con.close()
    con = duckdb.connect(str(directory / "dev.duckdb"), read_only=True)
    hold = duckdb.connect(str(directory / "holdout.duckdb"), read_only=True)
    for table in dev_sql:
        cols = con.execute(f'DESCRIBE "{table}"').fetchall()
        card["tables"][table] = {
            "person_column": person_columns.get(table, "person_id" if any(
                c[0] == "person_id" for c in cols) else None),
            "dev_rows": con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0],
            "holdout_rows": hold.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0],
            "columns": [{"name": c[0], "type": c[1],
                         "classification": classifications.get(c[0], "clinical"),
                         **(dp_columns or {}).get(c[0], {})} for c in cols],
        }
    con.close()
    hold.close()
    (directory / "card.json").write_text(json.dumps(card), encoding="utf-8")
    (directory / "report.json").write_text(json.dumps({"dataset": dataset_id, "passed": True}),
                                           encoding="utf-8")
    register_release(ctx.conn, dataset_id=dataset_id, title=dataset_id, version=version,
                     relative_directory=str(rel_dir), manifest_hash="test", built_by="test",
                     summary={})
    return current_release(ctx.conn, ctx.settings, dataset_id)


def release_shape(version: str, tables: dict[str, tuple[tuple[str, ...], str | None]]) -> Release:
    """A Release describing only table and column names (no files), for tests of policy
    resolution and query rewriting. ``tables`` maps name → (column names, person column)."""
    from portal.catalog.releases import ReleaseColumn, ReleaseTable

    return Release(
        dataset_id="test", version=version, directory=Path("/nonexistent"), built_at="", card={},
        tables={name: ReleaseTable(name, tuple(ReleaseColumn(c, "VARCHAR", "clinical")
                                               for c in columns), person, 0, 0)
                for name, (columns, person) in tables.items()})


def make_validation_run(ctx: Context, team: str = "acme-health",
                        requested_by: str = "analyst@acme-health.example",
                        task_id: str = "wdbc-malignancy") -> int:
    """A queued validation run of ``team`` on a bundled task (its model row only: no file)."""
    from portal.services import sandbox as sandbox_services
    from sandbox import store as runs

    card = sandbox_services.get_task(ctx, task_id)
    with transaction(ctx.conn):
        model_id = runs.insert_model(ctx.conn, sha256="0" * 64, size_bytes=1, team=team,
                                     uploaded_by=requested_by, name="m", model_version="1",
                                     intended_use="t", training_data="t")
        return runs.insert_run(ctx.conn, kind="validation", card=card, team=team,
                               requested_by=requested_by, model_id=model_id)
