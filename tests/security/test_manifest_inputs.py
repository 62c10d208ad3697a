"""Hostile and malformed dataset manifests: each is refused with a clear error naming the file,
line, table or column, leaks no data values, and (for builds) leaves an audit record and no
release."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from portal import audit
from portal.catalog.builder import build_release
from portal.catalog.manifest import load_manifest
from portal.errors import ConfigError
from portal.services import catalog

ROOT = Path(__file__).resolve().parents[2]
WDBC = (ROOT / "datasets" / "wdbc.yaml").read_text(encoding="utf-8")


def write(folder: Path, text: str | bytes, name: str = "wdbc") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    assert info.value.problems
    return info.value.problems


def test_the_bundled_manifests_load_cleanly():
    for path in sorted((ROOT / "datasets").glob("*.yaml")):
        assert load_manifest(path).manifest.id == path.stem


def test_tab_indentation_is_refused_with_its_line(tmp_path):
    text = WDBC.replace("\n  persons_table", "").replace("\n    person_column: case_id",
                                                         "\n\tperson_column: case_id")
    problems = problems_of(write(tmp_path, text))
    assert any("wdbc.yaml:" in p and "tab" in p for p in problems)


def test_truncated_manifest_is_refused(tmp_path):
    cut = WDBC.index("mean_radius") + 20
    problems = problems_of(write(tmp_path, WDBC[:cut]))
    assert all(p.startswith("wdbc.yaml") for p in problems)


def test_truncated_inside_a_quoted_string_is_refused_with_a_line(tmp_path):
    cut = WDBC.index('"Wisconsin') + 5
    problems = problems_of(write(tmp_path, WDBC[:cut]))
    assert any(p.startswith("wdbc.yaml:") and "invalid YAML" in p for p in problems)


def test_byte_order_mark_is_refused(tmp_path):
    problems = problems_of(write(tmp_path, b"\xef\xbb\xbf" + WDBC.encode()))
    assert problems == ["wdbc.yaml:1: file starts with a byte-order mark; save it as UTF-8 "
                        "without BOM"]


def test_ten_megabyte_manifest_is_refused_before_parsing(tmp_path):
    padding = "# " + "x" * 10_000_000 + "\n"
    problems = problems_of(write(tmp_path, WDBC + padding))
    assert "limit" in problems[0] and problems[0].startswith("wdbc.yaml")


def test_yaml_tags_are_refused(tmp_path):
    text = WDBC.replace('title: "Wisconsin', 'title: !!python/object/apply:os.system "Wisconsin')
    problems = problems_of(write(tmp_path, text))
    assert any("tags" in p and "wdbc.yaml:3" in p for p in problems)


def test_anchors_and_aliases_are_refused(tmp_path):
    text = WDBC.replace('licence: "CC BY 4.0"', 'licence: &l "CC BY 4.0"\n  url2: *l')
    problems = problems_of(write(tmp_path, text))
    assert any("anchors" in p for p in problems) and any("aliases" in p for p in problems)


def test_duplicate_keys_are_refused_with_the_line(tmp_path):
    text = WDBC.replace("standard:", 'title: "again"\nstandard:', 1)
    problems = problems_of(write(tmp_path, text))
    assert any("duplicate key 'title'" in p and p.startswith("wdbc.yaml:") for p in problems)


def test_unquoted_zip_with_leading_zero_is_refused(tmp_path):
    text = WDBC.replace('  age_reference_date: "1995-12-31"',
                        '  age_reference_date: "1995-12-31"\n  restricted_zip3: [01234]')
    problems = problems_of(write(tmp_path, text))
    assert any("leading zero" in p and "quote it" in p for p in problems)


def test_quoted_zip_prefix_must_have_three_digits(tmp_path):
    text = WDBC.replace('  age_reference_date: "1995-12-31"',
                        '  age_reference_date: "1995-12-31"\n  restricted_zip3: ["01234"]')
    problems = problems_of(write(tmp_path, text))
    assert any("restricted_zip3" in p and "three digits" in p for p in problems)


def test_unknown_keys_are_refused_naming_table_and_column(tmp_path):
    text = WDBC.replace("        classification: key\n",
                        "        classification: key\n        colour: red\n", 1)
    problems = problems_of(write(tmp_path, text))
    assert any("tables.cases.columns.case_id.colour: unknown key" in p for p in problems)


def test_wrong_types_and_out_of_range_values_are_refused(tmp_path):
    text = WDBC.replace("holdout_fraction: 0.25", "holdout_fraction: 0.9")
    text = text.replace("k_target: 5", 'k_target: "five"')
    problems = problems_of(write(tmp_path, text))
    assert any("split.holdout_fraction" in p for p in problems)
    assert any("privacy.k_target" in p for p in problems)


def test_unknown_classification_is_refused(tmp_path):
    text = WDBC.replace("classification: clinical", "classification: harmless", 1)
    problems = problems_of(write(tmp_path, text))
    assert any("classification" in p and "tables.cases.columns" in p for p in problems)


def test_direct_identifier_left_in_place_is_refused(tmp_path):
    text = WDBC.replace("      mean_radius:\n        type: DOUBLE\n        classification: clinical",
                        "      mean_radius:\n        type: DOUBLE\n"
                        "        classification: direct_identifier")
    problems = problems_of(write(tmp_path, text))
    hit = [p for p in problems if "cases.mean_radius" in p]
    assert hit and "must be dropped or pseudonymised" in hit[0]
    assert hit[0].startswith("wdbc.yaml:")


def test_key_that_is_kept_in_clear_is_refused(tmp_path):
    text = WDBC.replace("        transform: pseudonymise\n", "", 1)
    problems = problems_of(write(tmp_path, text))
    assert any("cases.case_id: a key must be pseudonymised" in p for p in problems)


def test_manifest_id_must_match_its_file_name(tmp_path):
    problems = problems_of(write(tmp_path, WDBC, name="other"))
    assert any("must match the file name" in p for p in problems)


# --- Source checks: run by `portal datasets check` and by every build -------------------------
def _settings_with(settings, folder: Path):
    return dataclasses.replace(settings, datasets_dir=folder)


def test_unclassified_source_column_fails_check_naming_table_and_column(ctx, tmp_path):
    text = WDBC.replace("      mean_texture:\n", "      removed_texture:\n", 1)
    text = text.replace("      removed_texture:\n        type: DOUBLE\n        classification: "
                        "clinical\n", "", 1)
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if "Mean texture" in line)
    del lines[start]
    folder = tmp_path / "cards"
    write(folder, "".join(lines))
    ctx.settings = _settings_with(ctx.settings, folder)
    [result] = catalog.check_manifests(ctx, ["wdbc"])
    assert not result["ok"]
    assert any("cases.mean_texture: source column is not classified" in p
               for p in result["problems"])


def test_source_missing_a_declared_column_fails_the_build_and_leaves_no_release(ctx, tmp_path):
    text = WDBC.replace("      malignant:\n", "      tumour_site:\n        type: VARCHAR\n"
                        "        classification: clinical\n        description: \"Site.\"\n"
                        "      malignant:\n", 1)
    folder = tmp_path / "cards"
    path = write(folder, text)
    settings = _settings_with(ctx.settings, folder)
    with pytest.raises(ConfigError) as info:
        build_release(settings, ctx.conn, "wdbc", actor="staff@platform.example")
    assert info.value.code == "manifest_source_mismatch"
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1)
                if "tumour_site:" in t)
    assert f"wdbc.yaml:{line}: cases.tumour_site: declared but the source has no such column" \
        in info.value.problems
    assert not (settings.releases_dir / "wdbc" / "1").exists()
    assert not list((settings.releases_dir / "wdbc").glob(".staging-*"))
    [event] = audit.list_events(ctx.conn, action="release.build")
    assert event.decision == "failed" and event.reason == "manifest_source_mismatch"
    assert audit.verify(ctx.conn).ok


def test_invalid_manifest_build_is_audited_and_error_has_no_internals(ctx, tmp_path):
    folder = tmp_path / "cards"
    write(folder, WDBC.replace("holdout_fraction: 0.25", "holdout_fraction: 0.9"))
    settings = _settings_with(ctx.settings, folder)
    with pytest.raises(ConfigError) as info:
        build_release(settings, ctx.conn, "wdbc", actor="staff@platform.example")
    shown = json.dumps(info.value.to_dict())
    assert str(tmp_path) not in shown and "Traceback" not in shown
    [event] = audit.list_events(ctx.conn, action="release.build")
    assert event.decision == "failed" and event.reason == "invalid_manifest"


def test_reference_to_a_key_that_is_not_pseudonymised_is_refused(tmp_path):
    text = WDBC.replace("        transform: pseudonymise\n",
                        "        transform: pseudonymise\n        references: cases.malignant\n", 1)
    problems = problems_of(write(tmp_path, text))
    assert any("cases.case_id: references must name another table's pseudonymised key" in p
               for p in problems)


def test_cli_check_reports_every_problem_as_json_and_exits_2(ctx, tmp_path, capsys):
    from portal.cli import main as cli_main

    folder = tmp_path / "cards"
    write(folder, WDBC.replace("title:", "title: &t", 1))
    code = cli_main(["datasets", "check", "--format", "json"],
                    {"PORTAL_HOME": str(ctx.settings.home), "PORTAL_DATASETS_DIR": str(folder)})
    shown = json.loads(capsys.readouterr().out)
    assert code == 2
    assert shown["error"]["code"] == "invalid_manifest"
    assert "wdbc.yaml:3: anchors (&name) are not allowed" in shown["error"]["message"]
    assert str(tmp_path) not in json.dumps(shown)
