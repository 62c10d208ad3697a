"""AppTest of the download ban (the browser side is tests/e2e/test_download_ban.py): the app
turns the grids' own export off, a result is shown in a grid with a toolbar only while that
export is off (else in a static table), and a tier without download shows no download button."""

from __future__ import annotations

import pytest
from streamlit import config

from tests.app.helpers import ROOT, app, claims, texts
from tests.app.test_startup_pages import run_sql
from tests.factories_access import make_grant

FOUNDER = "founder@gamma-ai.example"
ROWS = "SELECT person_id, year_of_birth FROM person ORDER BY 1 LIMIT 20"


@pytest.fixture
def export_setting():
    before = config.get_option("client.disableDataExport")
    yield lambda value: config.set_option("client.disableDataExport", value)
    config.set_option("client.disableDataExport", before)


def test_the_app_turns_the_grids_own_export_off(seeded, export_setting):
    export_setting(False)
    at = app(None, claims(FOUNDER))
    at.run()
    assert not at.exception
    assert config.get_option("client.disableDataExport") is True
    assert (ROOT / ".streamlit" / "config.toml").read_text().count(
        "disableDataExport = true") == 1


def _row_level_result(released, export_setting, export_off: bool):
    make_grant(released, "gamma-ai", "eunomia", "row-level")
    export_setting(export_off)
    return run_sql(app("workspace.py", claims(FOUNDER)).run(), ROWS)


def test_without_the_setting_results_are_a_static_table_without_a_toolbar(released,
                                                                         export_setting):
    at = _row_level_result(released, export_setting, False)
    assert not at.exception
    assert at.table and list(at.table[0].value.columns) == ["person_id", "year_of_birth"]
    assert not at.get("download_button")
    assert "does not allow downloading" in texts(at)


def test_with_the_setting_results_are_a_grid_and_still_no_download_button(released,
                                                                         export_setting):
    at = _row_level_result(released, export_setting, True)
    assert not at.table
    assert any(list(d.value.columns) == ["person_id", "year_of_birth"] for d in at.dataframe)
    assert not at.get("download_button")
