"""AppTest of the sandbox pages on a real wdbc release: a member uploads, dry-runs, submits and
sees history; staff release; the team then sees the report. Guards refuse the wrong role."""

from __future__ import annotations

import pytest

from portal import audit
from portal.identity import principal_for_email
from portal.services import demo
from portal.services import sandbox as services
from tests.app.helpers import app, claims, error_codes, texts
from tests.integration.sandbox.helpers import (
    build_template,
    copy_template,
    held_out,
    need_isolation,
    run_queue,
    wdbc_model,
)
from tests.unit.sandbox.factories import MODEL_CARD

ANALYST = "analyst@acme-health.example"
STAFF = "staff@platform.example"


@pytest.fixture(scope="module")
def wdbc_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("sandbox-pages") / "home"
    build_template(home, ("wdbc",))
    return home


@pytest.fixture
def home(settings, wdbc_home):
    ctx = copy_template(wdbc_home, settings)
    demo.seed_people(ctx)
    yield ctx
    ctx.close()


def _member_page():
    at = app("model_validation.py", claims(ANALYST))
    at.run()
    at.selectbox(key="sb_task").select("wdbc-malignancy").run()
    return at


def _fill_card(at):
    at.text_input(key="sb_name").input("LR")
    at.text_area(key="sb_intended").input("Triage of breast masses")
    at.text_area(key="sb_training").input("WDBC dev partition")
    return at


def test_sandbox_page_shows_the_task_card_and_quotas(home):
    at = _member_page()
    assert not at.exception
    shown = texts(at)
    assert "Malignancy of a breast mass" in shown
    assert "Valid runs today" in [m.label for m in at.metric]
    assert "mean_radius" in shown and "WITH population AS" in shown


def test_member_submits_then_sees_the_report_after_staff_release(home):
    need_isolation()
    model = wdbc_model(home)
    at = _member_page()
    _fill_card(at)
    at.file_uploader(key="sb_file").upload("model.onnx", model, "application/octet-stream")
    at.checkbox(key="sb_final").check()
    at.button[1].click().run()  # Submit for validation
    assert not at.exception
    assert any("queued" in s.value for s in at.success)
    run_id = services.list_runs(home, principal_for_email(home.conn, STAFF))[0]["id"]
    run_queue(home)
    staff_page = app("validation_runs.py", claims(STAFF))
    staff_page.run()
    assert not staff_page.exception
    staff_page.selectbox(key="vr_run").select(run_id).run()
    staff_page.button(key="vr_release").click().run()
    assert any("released" in s.value for s in staff_page.success)
    at = _member_page()
    assert not at.exception
    shown = texts(at)
    assert "AUROC" in shown and "At decision thresholds" in shown
    assert "Ladder best" in [m.label for m in at.metric]
    assert len(at.get("download_button")) == 2
    actions = {e.action for e in audit.list_events(home.conn)}
    assert {"sandbox.submit", "sandbox.run.release", "sandbox.report.view"} <= actions


def test_pickle_upload_shows_its_error_code(home):
    at = _member_page()
    _fill_card(at)
    at.file_uploader(key="sb_file").upload("model.onnx", b"\x80\x04\x95junk", "application/x")
    at.button[1].click().run()
    assert error_codes(at) == ["model_is_pickle"]


def test_dry_run_from_the_page_reports_its_result(home):
    need_isolation()
    at = _member_page()
    _fill_card(at)
    at.file_uploader(key="sb_file").upload("m.onnx", wdbc_model(home), "application/x")
    at.button[0].click().run()
    assert not at.exception
    assert any("Dry run" in s.value for s in at.success)


def test_staff_page_is_refused_to_members_and_sandbox_page_to_staff(home):
    at = app("validation_runs.py", claims(ANALYST))
    at.run()
    assert error_codes(at) == ["staff_only"]
    at = app("model_validation.py", claims(STAFF))
    at.run()
    assert error_codes(at) == ["member_only"]


def test_withhold_from_the_staff_page_needs_a_reason(home):
    need_isolation()
    member = principal_for_email(home.conn, ANALYST)
    run_id = services.submit(home, member, "wdbc-malignancy", wdbc_model(home), MODEL_CARD)
    run_queue(home)
    at = app("validation_runs.py", claims(STAFF))
    at.run()
    at.selectbox(key="vr_run").select(run_id).run()
    at.text_area(key="vr_reason").input("")
    at.button(key="FormSubmitter:vr_withhold_form-Withhold").click().run()
    assert error_codes(at) == ["reason_required"]
    at.text_area(key="vr_reason").input("Pending data owner check")
    at.button(key="FormSubmitter:vr_withhold_form-Withhold").click().run()
    assert services.run_status(home, member, run_id)["status"] == "withheld"


def test_staff_review_shows_the_singling_out_flag_and_its_reasons(home):
    from tests.security import label_attacks as attacks

    need_isolation()
    held = held_out(home)
    model = attacks.matching_model(30, held.features[[0]], [attacks.ONE_CASE_HIGH],
                                   attacks.ONE_CASE_LOW)
    member = principal_for_email(home.conn, ANALYST)
    run_id = services.submit(home, member, "wdbc-malignancy", model, MODEL_CARD)
    run_queue(home)
    staff_page = app("validation_runs.py", claims(STAFF))
    staff_page.run()
    staff_page.selectbox(key="vr_run").select(run_id).run()
    assert not staff_page.exception
    assert any("flagged this run: singling" in e.value for e in staff_page.error)
    assert "(exact)" in " ".join(m.label for m in staff_page.metric)
    reasons = services.run_status(home, principal_for_email(home.conn, STAFF),
                                  run_id)["singling_out"]["reasons"]
    assert any("row(s) at or above the threshold 0.5" in r for r in reasons)
