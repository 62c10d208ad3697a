"""Catalog use cases and the `portal datasets` CLI on real releases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portal import authz
from portal.authz import OPERATOR
from portal.cli import main as cli_main
from portal.errors import Denied, NotFound
from portal.identity import ANONYMOUS
from portal.services import catalog
from tests.factories import make_user


def test_anonymous_principal_cannot_browse_the_catalog(released_ctx):
    with pytest.raises(Denied) as info:
        catalog.list_datasets(released_ctx, ANONYMOUS)
    assert info.value.code == "sign_in_required"
    assert not authz.can_browse(released_ctx.conn, ANONYMOUS)


def test_member_sees_cards_but_no_release_files(released_ctx):
    member = make_user(released_ctx, "analyst@acme-health.example", team="acme-health")
    listed = {d["id"]: d for d in catalog.list_datasets(released_ctx, member)}
    assert set(listed) == {"eunomia", "wdbc", "omop_synth"}
    assert listed["eunomia"]["status"] == "released" and listed["eunomia"]["release_version"] == "1"
    card = catalog.describe_dataset(released_ctx, member, "eunomia")
    assert "path" not in card["release"] and "holdout_path" not in card["release"]
    assert str(released_ctx.settings.home) not in json.dumps(card)
    person = next(t for t in card["tables"] if t["name"] == "person")
    classes = {c["name"]: c["classification"] for c in person["columns"]}
    assert classes["year_of_birth"] == "quasi_identifier" and classes["person_id"] == "key"
    assert card["report"]["passed"] and card["excluded_tables"]["death"]


def test_staff_see_dev_and_holdout_paths(released_ctx):
    staff = make_user(released_ctx, "staff@platform.example", role="staff")
    card = catalog.describe_dataset(released_ctx, staff, "wdbc")
    assert Path(card["release"]["path"]).name == "dev.duckdb"
    assert Path(card["release"]["holdout_path"]).is_file()


def test_member_cannot_build_releases(released_ctx):
    member = make_user(released_ctx, "analyst@acme-health.example", team="acme-health")
    with pytest.raises(Denied):
        catalog.build_releases(released_ctx, member, ["wdbc"])


def test_unknown_dataset_is_not_found(released_ctx):
    with pytest.raises(NotFound):
        catalog.describe_dataset(released_ctx, OPERATOR, "nope")


def test_card_without_a_release_comes_from_the_manifest(ctx):
    card = catalog.describe_dataset(ctx, OPERATOR, "wdbc")
    assert card["release"] is None and card["report"] is None
    assert card["tables"][0]["name"] == "cases"
    assert [d["status"] for d in catalog.list_datasets(ctx, OPERATOR)] == ["no_release"] * 3


def test_demographics_suppress_small_cells(released_ctx):
    demo = catalog.demographics(released_ctx, OPERATOR, "omop_synth")
    assert demo["available"]
    assert all(c["persons"] is None or c["persons"] >= 11 for c in demo["cells"])
    assert catalog.demographics(released_ctx, OPERATOR, "wdbc")["available"] is False


def _run(capsys, settings, *argv):
    code = cli_main(list(argv), {"PORTAL_HOME": str(settings.home), "PORTAL_ENV": "development"})
    out = capsys.readouterr().out
    return code, out


def test_cli_list_and_describe_json(released_settings, capsys):
    code, out = _run(capsys, released_settings, "datasets", "list", "--format", "json")
    assert code == 0 and {d["id"] for d in json.loads(out)} == {"eunomia", "wdbc", "omop_synth"}
    code, out = _run(capsys, released_settings, "datasets", "describe", "eunomia",
                     "--format", "json")
    card = json.loads(out)
    assert code == 0 and card["release"]["path"].endswith("eunomia/1/dev.duckdb")
    assert card["release"]["holdout_path"].endswith("eunomia/1/holdout.duckdb")


def test_cli_describe_unknown_dataset_exits_2_with_json_error(released_settings, capsys):
    code, out = _run(capsys, released_settings, "datasets", "describe", "nope", "--format",
                     "json")
    assert code == 2 and json.loads(out) == {"error": {
        "code": "dataset_not_found", "message": "There is no dataset 'nope'."}}


def test_cli_check_passes_on_the_bundled_cards(released_settings, capsys):
    code, out = _run(capsys, released_settings, "datasets", "check")
    assert code == 0 and out.splitlines() == ["eunomia: ok", "omop_synth: ok", "wdbc: ok"]


def test_cli_build_one_dataset_prints_its_new_version(released_settings, capsys):
    code, out = _run(capsys, released_settings, "datasets", "build", "wdbc", "--format", "json")
    assert code == 0
    [result] = json.loads(out)
    assert result["dataset"] == "wdbc" and result["version"] == "2" and result["passed"]


@pytest.mark.parametrize("persons", [0, 5, 10_000_000])
def test_build_with_an_out_of_range_person_count_is_refused(ctx, persons):
    from portal.errors import InvalidInput

    with pytest.raises(InvalidInput) as info:
        catalog.build_releases(ctx, OPERATOR, ["omop_synth"], persons=persons)
    assert info.value.code == "invalid_persons"
