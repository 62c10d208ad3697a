"""Strict loading of access policies: every problem with file and line, never half-applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.errors import ConfigError
from portal.policy.loader import check_against_releases, load_policies, row_filter_problem

ROOT = Path(__file__).resolve().parents[3]

GOOD = """\
dataset: demo
terms: Use it well.
tiers:
  row-level:
    description: Rows.
    result_mode: rows
    max_rows: 10
    budget: {per_minute: 5, per_day: 50}
    max_grant_days: 30
    tables:
      person:
        allow_columns: [person_id, year_of_birth]
        row_filter: "year_of_birth >= 1930"
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_policies_load():
    policies = load_policies(ROOT / "access_policies")
    assert set(policies) >= {"eunomia", "wdbc", "omop_synth"}
    eunomia = policies["eunomia"]
    assert eunomia.tiers["row-level"].max_rows == 1000
    assert eunomia.tiers["row-level"].download == "none"
    assert eunomia.tiers["aggregate"].min_persons == 11
    assert eunomia.tiers["aggregate"].round_counts_to == 5


def test_good_policy_loads_with_its_line_map(tmp_path):
    write(tmp_path, "demo.yaml", GOOD)
    policies = load_policies(tmp_path)
    assert policies["demo"].tiers["row-level"].tables["person"].row_filter
    assert policies.where("demo", "row-level", "tables", "person") == "demo.yaml:11"


@pytest.mark.parametrize(("text", "expected"), [
    # YAML-level problems
    (GOOD.replace("max_rows: 10", "max_rows: 10\n    max_rows: 11"), "demo.yaml:8: duplicate key"),
    (GOOD.replace("max_rows: 10", "max_rowz: 10"), "demo.yaml:7:"),
    (GOOD.replace("terms: Use it well.", "terms: &t Use it well."), "anchors"),
    (GOOD.replace("max_rows: 10", "max_rows: !!str 10"), "tags"),
    (GOOD.replace("result_mode: rows", "result_mode: yes"), "ambiguous value"),
    # schema problems
    (GOOD.replace("result_mode: rows", "result_mode: aggregate"), "min_persons"),
    (GOOD.replace("max_rows: 10", "max_rows: 0"), "max_rows"),
    (GOOD.replace("person:", "Person Table:"), "table name"),
    (GOOD.replace("[person_id, year_of_birth]", "[person_id, 'year of birth']"), "not a column"),
    # row filters are parsed with DuckDB's parser
    (GOOD.replace('"year_of_birth >= 1930"', '"1=1; DROP TABLE person"'), "row_filter"),
    (GOOD.replace('"year_of_birth >= 1930"', '"person_id IN (SELECT 1)"'), "subqueries"),
    (GOOD.replace('"year_of_birth >= 1930"', '"read_text(\'/etc/passwd\') <> \'\'"'),
     "not allowed"),
    (GOOD.replace('"year_of_birth >= 1930"', '"year_of_birth >="'), "does not parse"),
    (GOOD.replace('"year_of_birth >= 1930"', '"1=1) UNION SELECT * FROM person WHERE (1=1"'),
     "does not parse"),
    (GOOD.replace('"year_of_birth >= 1930"', '"1=1) GROUP BY (1"'), "does not parse"),
    (GOOD.replace('"year_of_birth >= 1930"', '"1=1) LIMIT (1"'), "does not parse"),
])
def test_bad_policy_is_refused_with_file_and_line(tmp_path, text, expected):
    write(tmp_path, "demo.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_policies(tmp_path)
    joined = "\n".join(info.value.problems)
    assert expected in joined
    assert joined.startswith("demo.yaml")


def test_every_problem_in_every_file_is_reported_and_none_is_applied(tmp_path):
    write(tmp_path, "demo.yaml", GOOD.replace("max_rows: 10", "max_rows: -1"))
    write(tmp_path, "other.yaml", GOOD.replace("dataset: demo", "dataset: other")
          .replace("max_grant_days: 30", "max_grant_days: 0"))
    write(tmp_path, "fine.yaml", GOOD.replace("dataset: demo", "dataset: fine"))
    with pytest.raises(ConfigError) as info:
        load_policies(tmp_path)
    files = {p.split(":")[0] for p in info.value.problems}
    assert files == {"demo.yaml", "other.yaml"}


def test_file_name_must_match_dataset(tmp_path):
    write(tmp_path, "wrong.yaml", GOOD)
    with pytest.raises(ConfigError, match="must match the file name"):
        load_policies(tmp_path)


def test_missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        load_policies(tmp_path / "nope")


def test_row_filter_problem_accepts_a_plain_expression():
    assert row_filter_problem("year_of_birth BETWEEN 1930 AND 2000 AND gender_concept_id = 8507") \
        is None


def test_policy_naming_columns_the_release_lacks_is_an_error(ctx, tmp_path):
    from tests.factories_query import make_omop_release

    release = make_omop_release(ctx)
    write(tmp_path, "eunomia.yaml", GOOD.replace("dataset: demo", "dataset: eunomia")
          .replace("[person_id, year_of_birth]", "[person_id, birth_datetime]")
          .replace("year_of_birth >= 1930", "shoe_size > 3")
          .replace("      person:", "      person:\n        transforms: {zip: {band: 5}}")
          + "      drugs:\n        allow_columns: ['*']\n")
    policies = load_policies(tmp_path)
    with pytest.raises(ConfigError) as info:
        check_against_releases(policies, {"eunomia": release})
    joined = "\n".join(info.value.problems)
    assert "person.birth_datetime is not in the release" in joined
    assert "shoe_size" in joined
    assert "person.zip" in joined
    assert "table 'drugs' is not in release" in joined

    write(tmp_path, "eunomia.yaml", GOOD.replace("dataset: demo", "dataset: eunomia")
          .replace("      person:", "      person:\n        transforms: {year_of_birth: "
                                    "{date_to_year: true}}"))
    with pytest.raises(ConfigError, match="person.year_of_birth is BIGINT"):
        check_against_releases(load_policies(tmp_path), {"eunomia": release})
    assert all(p.startswith("eunomia.yaml:") for p in info.value.problems)


def test_aggregate_tier_must_expose_person_columns(ctx, tmp_path):
    from tests.factories_query import make_omop_release

    release = make_omop_release(ctx)
    text = (GOOD.replace("dataset: demo", "dataset: eunomia")
            .replace("result_mode: rows", "result_mode: aggregate\n    min_persons: 5")
            .replace("[person_id, year_of_birth]", "[year_of_birth]"))
    write(tmp_path, "eunomia.yaml", text)
    with pytest.raises(ConfigError, match="must expose person.person_id"):
        check_against_releases(load_policies(tmp_path), {"eunomia": release})


def test_bundled_policies_match_the_real_releases(released_ctx):
    from portal.services.policies import check_policies, current_releases

    assert "eunomia" in current_releases(released_ctx)
    check_policies(released_ctx)
