"""Semantic checks of dataset cards and the comparison with a source's tables and columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.catalog.manifest import check_against_source, load_manifest
from portal.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
SYNTH = (ROOT / "datasets" / "omop_synth.yaml").read_text(encoding="utf-8")


def problems(tmp_path, text: str, name: str = "omop_synth") -> list[str]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    assert info.value.code == "invalid_manifest"
    return info.value.problems


def test_quasi_identifier_missing_from_the_list_is_refused(tmp_path):
    text = SYNTH.replace("ethnicity_concept_id]", "]").replace(", ]", "]")
    found = problems(tmp_path, text)
    assert any("person.ethnicity_concept_id: quasi-identifier not listed" in p for p in found)


def test_quasi_identifier_outside_the_person_table_must_be_generalised(tmp_path):
    text = SYNTH.replace("        transform: date_shift\n", "", 1)
    found = problems(tmp_path, text)
    assert any("observation_period.observation_period_start_date: a quasi-identifier outside"
               in p for p in found)


def test_generalise_settings_must_match_below_k(tmp_path):
    text = SYNTH.replace("below_k: generalise", "below_k: suppress")
    assert any("privacy.generalise is required when below_k is generalise" in p
               for p in problems(tmp_path, text))


def test_band_transform_needs_bands(tmp_path):
    text = SYNTH.replace("        transform: zip3\n", "        transform: band\n", 1)
    found = problems(tmp_path, text)
    assert any("location.zip" in p and "bands are required" in p for p in found)


def test_transform_output_type_must_match_the_declared_type(tmp_path):
    text = SYNTH.replace("      year_of_birth:\n        type: INTEGER",
                         "      year_of_birth:\n        type: VARCHAR", 1)
    assert any("transform birth_year_cap produces INTEGER or BIGINT, not VARCHAR" in p
               for p in problems(tmp_path, text))


def test_date_shift_needs_a_person_column(tmp_path):
    text = SYNTH.replace("  death:\n    description: \"Date (shifted) and cause of death for "
                         "persons who died.\"\n    person_column: person_id\n",
                         "  death:\n    description: \"Date (shifted) and cause of death for "
                         "persons who died.\"\n", 1)
    found = problems(tmp_path, text)
    assert any("table death: date_shift needs a person_column" in p for p in found)


def test_generalisation_widths_must_increase(tmp_path):
    text = SYNTH.replace("band_widths: [5, 10, 20]", "band_widths: [10, 5]")
    assert any("band widths must be increasing" in p for p in problems(tmp_path, text))


def test_source_comparison_names_every_mismatch(tmp_path):
    path = tmp_path / "omop_synth.yaml"
    path.write_text(SYNTH, encoding="utf-8")
    loaded = load_manifest(path)
    source = {t: {c: spec.type for c, spec in table.columns.items()}
              for t, table in loaded.manifest.tables.items()}
    source["person"]["nickname"] = "VARCHAR"
    del source["death"]["cause_concept_id"]
    source["note"] = {"note_text": "VARCHAR"}
    with pytest.raises(ConfigError) as info:
        check_against_source(loaded, source)
    found = info.value.problems
    assert info.value.code == "manifest_source_mismatch"
    assert any("person.nickname: source column is not classified" in p for p in found)
    assert any("death.cause_concept_id: declared but the source has no such column" in p
               for p in found)
    assert any("source table 'note' is not classified" in p for p in found)
    assert all(p.startswith("omop_synth.yaml") for p in found)
