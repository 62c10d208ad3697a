"""`portal policies check`: ok against real releases; every problem with file and line."""

from __future__ import annotations

import json

from portal.cli import main


def test_policies_check_passes_on_the_bundled_policies(released_settings, capsys):
    env = {"PORTAL_HOME": str(released_settings.home)}
    assert main(["policies", "check", "--format", "json"], env) == 0
    out = json.loads(capsys.readouterr().out)
    by_dataset = {p["dataset"]: p for p in out["policies"]}
    assert by_dataset["eunomia"]["tiers"] == ["aggregate", "row-level"]
    assert by_dataset["eunomia"]["checked_against_release"]


def test_policies_check_lists_every_problem_with_file_and_line(released_settings, tmp_path,
                                                               capsys):
    folder = tmp_path / "policies"
    folder.mkdir()
    bundled = (released_settings.project_root / "access_policies" / "eunomia.yaml").read_text()
    (folder / "eunomia.yaml").write_text(
        bundled.replace("year_of_birth, race_concept_id", "birth_datetime, race_concept_id", 1))
    (folder / "wdbc.yaml").write_text("dataset: wdbc\nterms: x\ntiers: {}\nextra: 1\n")
    env = {"PORTAL_HOME": str(released_settings.home), "PORTAL_POLICIES_DIR": str(folder)}
    assert main(["policies", "check"], env) == 2
    text = capsys.readouterr().out
    assert "wdbc.yaml:4: extra: unknown key" in text
    assert main(["policies", "check", "--format", "json"], env) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["error"]["code"] == "invalid_configuration"
    assert any(p.startswith("wdbc.yaml:") for p in out["problems"])
    # once the file loads, the release check names the missing column with file and line
    (folder / "wdbc.yaml").unlink()
    assert main(["policies", "check"], env) == 2
    text = capsys.readouterr().out
    assert "eunomia.yaml:" in text and "person.birth_datetime is not in the release" in text


def test_portal_refuses_to_start_on_an_invalid_policy(tmp_path, capsys):
    from portal import devserver

    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "eunomia.yaml").write_text("dataset: eunomia\nterms: x\ntiers: {}\nextra: 1\n")
    env = {"PORTAL_HOME": str(tmp_path / "home"), "PORTAL_POLICIES_DIR": str(folder)}
    assert devserver.main([], env) == 2
    assert "eunomia.yaml:4" in capsys.readouterr().err
