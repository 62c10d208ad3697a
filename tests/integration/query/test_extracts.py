"""The trusted extract builder on real DuckDB files: only the tier's tables and columns, dev
partition only, row filters and transforms applied, content-addressed, atomic."""

from __future__ import annotations

import os
import threading

import duckdb
import pytest

from portal.services.context import Context
from portal.services.policies import resolved_tier
from portal.services.query import extract_for
from tests.factories_query import make_omop_release, settings_with_policies


def columns(path, table):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
    finally:
        con.close()


def scalar(path, sql):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def test_row_level_extract_holds_only_the_tiers_columns(ctx):
    make_omop_release(ctx)
    path = extract_for(ctx, "eunomia", "row-level")
    assert columns(path, "person") == ["person_id", "gender_concept_id", "year_of_birth",
                                       "race_concept_id", "ethnicity_concept_id"]
    assert "condition_source_value" not in columns(path, "condition_occurrence")
    assert "stop_reason" not in columns(path, "condition_occurrence")


def test_extract_never_contains_held_out_rows(ctx):
    make_omop_release(ctx)
    path = extract_for(ctx, "eunomia", "row-level")
    assert scalar(path, "SELECT count(*) FROM person") == 200
    assert scalar(path, "SELECT max(person_id) FROM person") == 200
    assert scalar(path, "SELECT count(*) FROM condition_occurrence"
                        " WHERE condition_concept_id = 999999") == 0


def test_same_spec_shares_one_file_and_changes_build_new_ones(ctx, tmp_path):
    make_omop_release(ctx)
    first = extract_for(ctx, "eunomia", "row-level")
    assert extract_for(ctx, "eunomia", "row-level") == first
    # The bundled aggregate tier exposes the same tables and columns: same spec, same file.
    assert extract_for(ctx, "eunomia", "aggregate") == first
    narrower = settings_with_policies(ctx.settings, tmp_path / "p", {
        "ethnicity_concept_id]": "]"})
    other = extract_for(Context(narrower, ctx.conn), "eunomia", "row-level")
    assert other != first
    assert "ethnicity_concept_id" not in columns(other, "person")
    make_omop_release(ctx, version="v2")
    assert extract_for(ctx, "eunomia", "row-level") not in (first, other)


def test_row_filters_and_transforms_are_applied_by_the_builder(ctx, tmp_path):
    make_omop_release(ctx)
    settings = settings_with_policies(ctx.settings, tmp_path / "p", {
        "        deny_columns: [\"*\"]\n  aggregate:":
        "        deny_columns: [\"*\"]\n        row_filter: \"year_of_birth >= 1960\"\n"
        "        transforms: {year_of_birth: {band: 10}}\n  aggregate:"})
    path = extract_for(Context(settings, ctx.conn), "eunomia", "row-level")
    assert scalar(path, "SELECT min(year_of_birth) FROM person") == 1960
    assert scalar(path, "SELECT count(DISTINCT year_of_birth) FROM person") == 3  # 60s-80s


def test_concurrent_builders_of_one_extract_leave_one_complete_file(ctx):
    make_omop_release(ctx)
    release, resolved = resolved_tier(ctx, "eunomia", "row-level")
    from portal.query.extracts import build_extract

    paths, errors = [], []

    def build():
        try:
            paths.append(build_extract(ctx.settings, release, resolved))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(paths)) == 1
    assert scalar(paths[0], "SELECT count(*) FROM person") == 200
    leftovers = [p.name for p in ctx.settings.extracts_dir.iterdir() if p.suffix != ".duckdb"]
    assert leftovers == []


def test_staff_prune_removes_only_stale_extracts(ctx):
    from portal.errors import Denied
    from portal.services.query import prune_extracts
    from tests.factories import make_user

    make_omop_release(ctx)
    old = extract_for(ctx, "eunomia", "row-level")
    make_omop_release(ctx, version="v2")
    current = extract_for(ctx, "eunomia", "row-level")
    staff = make_user(ctx, "staff@platform.example", role="staff")
    member = make_user(ctx, "a@acme-health.example", team="acme-health")
    with pytest.raises(Denied):
        prune_extracts(ctx, member)
    leftover = ctx.settings.extracts_dir / ".eunomia-x.1.abc.tmp"
    leftover.write_bytes(b"half a build")
    fresh = ctx.settings.extracts_dir / ".eunomia-y.2.def.tmp"
    fresh.write_bytes(b"a build in progress")
    os.utime(leftover, (0, 0))
    assert prune_extracts(ctx, staff) == [old.name, leftover.name]
    assert current.exists() and not old.exists() and fresh.exists()


def test_bundled_eunomia_row_level_tier_on_the_real_release(released_ctx):
    from portal.query.extracts import extract_schema

    schema = extract_schema(extract_for(released_ctx, "eunomia", "row-level"))
    assert [c for c, _ in schema["person"]] == ["person_id", "gender_concept_id",
                                                "year_of_birth", "race_concept_id",
                                                "ethnicity_concept_id"]
    person_tables = {"person", "condition_occurrence", "drug_exposure", "measurement",
                     "observation", "visit_occurrence", "procedure_occurrence"}
    for table in person_tables & set(schema):
        names = [c for c, _ in schema[table]]
        assert not [c for c in names if c.endswith(("_source_value", "_datetime"))], table
        assert "person_source_value" not in names and "stop_reason" not in names
    # free text never reaches a person-linked table (vocabulary text is not about persons)
    assert not [(t, c) for t in person_tables & set(schema) for c, ty in schema[t]
                if ty == "VARCHAR" and c != "quantity"]


def test_extract_files_are_readable_by_the_service_and_the_sql_workers_only(ctx):
    import stat

    from portal.query.extracts import WORKER_GID

    make_omop_release(ctx)
    path = extract_for(ctx, "eunomia", "row-level")
    info = path.stat()
    if os.geteuid() == 0:
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 0, WORKER_GID)
    else:
        assert stat.S_IMODE(info.st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
