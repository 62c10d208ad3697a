"""AppTest of the run page, the leaderboard and the upload form on a real wdbc release, for a
member, another team's member and staff."""

from __future__ import annotations

import pytest

from portal.identity import principal_for_email
from portal.services import demo
from portal.services import leaderboard as boards
from portal.services import sandbox as services
from tests.app.helpers import app, claims, error_codes, texts
from tests.integration.sandbox.helpers import (
    build_template,
    copy_template,
    need_isolation,
    run_queue,
    wdbc_model,
)
from tests.unit.sandbox.factories import MODEL_CARD

ANALYST = "analyst@acme-health.example"
RIVAL = "analyst@beta-bio.example"
STAFF = "staff@platform.example"
TASK = "wdbc-malignancy"


@pytest.fixture(scope="module")
def wdbc_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("run-pages") / "home"
    build_template(home, ("wdbc",))
    return home


@pytest.fixture
def home(settings, wdbc_home):
    ctx = copy_template(wdbc_home, settings)
    demo.seed_people(ctx)
    yield ctx
    ctx.close()


def _run_page(email: str, run_id) -> object:
    at = app("validation_run.py", claims(email))
    if run_id is not None:
        at.query_params["id"] = str(run_id)
    at.run()
    return at


def _submitted(home, final: bool = True) -> int:
    member = principal_for_email(home.conn, ANALYST)
    return services.submit(home, member, TASK, wdbc_model(home), MODEL_CARD, final=final)


def test_run_page_shows_progress_while_queued_then_review_then_the_report(home):
    need_isolation()
    run_id = _submitted(home)
    at = _run_page(ANALYST, run_id)
    assert not at.exception
    assert any("Queued" in p.proto.text for p in at.get("progress"))
    assert "Refresh" not in [b.label for b in at.button]
    run_queue(home)
    at = _run_page(ANALYST, run_id)
    assert "review the results" in texts(at) and "AUROC" not in texts(at)
    services.release_run(home, principal_for_email(home.conn, STAFF), run_id)
    at = _run_page(ANALYST, run_id)
    assert not at.exception
    shown = texts(at)
    assert "AUROC (DeLong)" in shown and "Subgroups" in shown
    assert len(at.get("image")) == 4  # ROC, PR, calibration, forest: as in the HTML report
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Report (JSON)", "Report (HTML)", "CHAI model card (XML)",
                      "TRIPOD+AI checklist"]


def test_a_non_final_run_page_shows_the_ladder_figure_only(home):
    need_isolation()
    run_id = _submitted(home, final=False)
    run_queue(home)
    services.release_run(home, principal_for_email(home.conn, STAFF), run_id)
    at = _run_page(ANALYST, run_id)
    assert not at.exception
    assert "Ladder best" in [m.label for m in at.metric]
    assert "Not a final submission" in texts(at) and "At decision thresholds" not in texts(at)
    assert len(at.get("image")) == 0 and len(at.get("download_button")) == 4


def test_run_page_refuses_other_teams_and_needs_a_run_id(home):
    run_id = _submitted(home)
    assert error_codes(_run_page(RIVAL, run_id)) == ["run_not_found"]
    assert error_codes(_run_page(ANALYST, None)) == ["run_id_required"]
    at = _run_page(STAFF, run_id)
    assert not at.exception and f"Validation run {run_id}" in texts(at)


def test_staff_see_an_unreleased_report_on_the_run_page(home):
    need_isolation()
    run_id = _submitted(home)
    run_queue(home)
    at = _run_page(STAFF, run_id)
    assert not at.exception and "AUROC (DeLong)" in texts(at)


def test_leaderboard_page_for_a_member_and_for_staff(home):
    need_isolation()
    run_id = _submitted(home)
    boards.seed_reference_models(home)
    run_queue(home)
    at = app("leaderboard.py", claims(ANALYST))
    at.run()
    assert not at.exception
    at.selectbox(key="lb_task").select(TASK).run()
    frame = at.dataframe[0].value
    assert list(frame["team"]) == ["Platform reference"]  # own run awaits review
    assert "status" not in frame.columns
    staff = app("leaderboard.py", claims(STAFF))
    staff.run()
    staff.selectbox(key="lb_task").select(TASK).run()
    frame = staff.dataframe[0].value
    assert set(frame["run"]) >= {run_id} and "status" in frame.columns
    assert "paired DeLong" in texts(staff)


def test_upload_form_clears_after_a_submit_and_the_counters_update(home):
    need_isolation()
    at = app("model_validation.py", claims(ANALYST))
    at.run()
    at.selectbox(key="sb_task").select(TASK).run()
    before = {m.label: m.value for m in at.metric}
    at.text_input(key="sb_name").input("LR")
    at.text_area(key="sb_intended").input("Triage of breast masses")
    at.text_area(key="sb_training").input("WDBC dev partition")
    at.text_input(key="sb_n_developer").input("Acme Health")
    at.file_uploader(key="sb_file").upload("m.onnx", wdbc_model(home), "application/x")
    at.button[1].click().run()
    assert not at.exception
    after = {m.label: m.value for m in at.metric}
    assert before["Valid runs today"].startswith("0 /") and after["Valid runs today"] \
        .startswith("1 /")
    assert at.text_input(key="sb_name").value == ""
    assert any("queued" in s.value for s in at.success)
    run = services.list_runs(home, principal_for_email(home.conn, ANALYST))[0]
    stored = home.conn.execute("SELECT m.narrative FROM sandbox_runs r JOIN sandbox_models m"
                               " ON m.id = r.model_id WHERE r.id = ?", (run["id"],)).fetchone()
    assert "Acme Health" in stored["narrative"]
    # a dry run uses its own allowance, and the counter shows it at once
    at.text_input(key="sb_name").input("LR")
    at.text_area(key="sb_intended").input("Triage")
    at.text_area(key="sb_training").input("dev")
    at.file_uploader(key="sb_file").upload("m.onnx", wdbc_model(home), "application/x")
    at.button[0].click().run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Dry runs today"].startswith("1 /")


def test_home_links_to_the_run_page_through_the_navigation(home):
    from tests.app.helpers import ROOT

    run_id = _submitted(home)
    at = app(None, claims(ANALYST))
    at.run()
    assert not at.exception
    links = [e for e in at.get("page_link")]
    assert any(f"Run {run_id}" in link.proto.label and link.proto.page == "run"
               for link in links)
    at.switch_page(str(ROOT / "pages" / "validation_run.py")).run()
    assert error_codes(at) == ["run_id_required"]  # registered for members, hidden from menu
    staff = app(None, claims(STAFF))
    staff.run()
    staff.switch_page(str(ROOT / "pages" / "leaderboard.py")).run()
    assert not staff.exception and "Leaderboards" in texts(staff)
