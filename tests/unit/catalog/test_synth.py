"""The synthetic OMOP generator: deterministic by seed, plausible, with its raw identifiers."""

from __future__ import annotations

import duckdb
import pytest

from portal.catalog import synth

TABLES = ("person", "location", "observation_period", "visit_occurrence", "condition_occurrence",
          "drug_exposure", "measurement", "death", "concept")


def _dump(path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}
    finally:
        con.close()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "a.duckdb"
    synth.generate(path, persons=1500, seed=42)
    return path


def test_same_seed_gives_identical_data(small, tmp_path):
    again = tmp_path / "b.duckdb"
    synth.generate(again, persons=1500, seed=42)
    assert _dump(small) == _dump(again)


def test_other_seed_gives_other_data(small, tmp_path):
    other = tmp_path / "c.duckdb"
    synth.generate(other, persons=1500, seed=7)
    assert _dump(small)["person"] != _dump(other)["person"]


def test_generated_histories_are_consistent(small):
    con = duckdb.connect(str(small), read_only=True)
    assert con.execute("SELECT count(*) FROM person").fetchone()[0] == 1500
    outside = con.execute("""
        SELECT count(*) FROM condition_occurrence c JOIN observation_period o USING (person_id)
        WHERE c.condition_start_date NOT BETWEEN o.observation_period_start_date
                                             AND o.observation_period_end_date""").fetchone()[0]
    assert outside == 0
    before_birth = con.execute("""
        SELECT count(*) FROM visit_occurrence v JOIN person p USING (person_id)
        WHERE v.visit_start_date < CAST(p.birth_datetime AS DATE)""").fetchone()[0]
    assert before_birth == 0
    unknown = con.execute("""
        SELECT count(*) FROM (SELECT condition_concept_id AS c FROM condition_occurrence UNION
        SELECT drug_concept_id FROM drug_exposure UNION
        SELECT measurement_concept_id FROM measurement) WHERE c NOT IN
        (SELECT concept_id FROM concept)""").fetchone()[0]
    assert unknown == 0
    for table, key in (("visit_occurrence", "visit_occurrence_id"),
                       ("condition_occurrence", "condition_occurrence_id"),
                       ("drug_exposure", "drug_exposure_id"), ("measurement", "measurement_id")):
        dupes = con.execute(f"SELECT count(*) - count(DISTINCT {key}) FROM {table}").fetchone()[0]
        assert dupes == 0, table


def test_raw_data_carries_the_identifiers_a_release_must_remove(small):
    con = duckdb.connect(str(small), read_only=True)
    uuids, over_89 = con.execute(
        "SELECT count(*) FILTER (WHERE regexp_full_match(person_source_value, "
        "'[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}')), "
        "count(*) FILTER (WHERE 2024 - year_of_birth > 89) FROM person").fetchone()
    assert uuids == 1500 and over_89 > 0
    restricted = con.execute("SELECT count(*) FROM location WHERE left(zip, 3) IN "
                             "('036', '692', '893')").fetchone()[0]
    assert restricted > 0
