"""`portal sandbox ...` through the real CLI entry point on a real wdbc release."""

from __future__ import annotations

import json

from portal.cli import main
from tests.integration.sandbox.helpers import MEMBER, STAFF, need_isolation, people, wdbc_model


def _run(capsys, settings, *argv: str) -> tuple[int, str]:
    code = main(list(argv), {"PORTAL_HOME": str(settings.home), "PORTAL_ENV": "development"})
    return code, capsys.readouterr().out


def test_cli_submit_work_release_report_and_verify(released_ctx, capsys, tmp_path):
    need_isolation()
    ctx = released_ctx
    people(ctx)
    model = tmp_path / "model.onnx"
    model.write_bytes(wdbc_model(ctx))
    s = ctx.settings
    code, out = _run(capsys, s, "sandbox", "tasks", "--format", "json")
    assert code == 0 and "wdbc-malignancy" in {t["id"] for t in json.loads(out)}
    code, out = _run(capsys, s, "sandbox", "submit", "--user", MEMBER, "--task",
                     "wdbc-malignancy", "--model", str(model))
    assert code == 0
    run_id = out.strip()
    assert run_id.isdigit()
    code, out = _run(capsys, s, "sandbox", "work", "--once", "--format", "json")
    assert code == 0 and json.loads(out)["processed"] == 1
    code, out = _run(capsys, s, "sandbox", "report", run_id, "--user", MEMBER)
    assert code == 2 and json.loads(out)["error"]["code"] == "report_not_released"
    code, out = _run(capsys, s, "sandbox", "release", run_id, "--by", STAFF, "--format", "json")
    assert code == 0 and json.loads(out)["status"] == "released"
    code, out = _run(capsys, s, "sandbox", "status", run_id, "--user", MEMBER, "--format", "json")
    assert json.loads(out)["status"] == "released"
    code, out = _run(capsys, s, "sandbox", "report", run_id, "--user", MEMBER)
    report_file = tmp_path / "report.json"
    report_file.write_text(out)
    code, out = _run(capsys, s, "sandbox", "report", run_id, "--format", "html")
    assert code == 0 and out.startswith("<!doctype html>")
    code, out = _run(capsys, s, "sandbox", "verify", str(report_file))
    assert code == 0 and out.startswith("VALID")
    tampered = json.loads(report_file.read_text())
    tampered["model"]["name"] = "someone else's model"
    report_file.write_text(json.dumps(tampered))
    code, out = _run(capsys, s, "sandbox", "verify", str(report_file), "--format", "json")
    assert code == 3 and json.loads(out)["ok"] is False


def test_cli_refused_upload_exits_2_with_the_error_json(released_ctx, capsys, tmp_path):
    ctx = released_ctx
    people(ctx)
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x80\x04\x95not really a model")
    code, out = _run(capsys, ctx.settings, "sandbox", "submit", "--user", MEMBER, "--task",
                     "wdbc-malignancy", "--model", str(bad), "--format", "json")
    assert code == 2
    error = json.loads(out)["error"]
    assert error["code"] == "model_is_pickle" and str(tmp_path) not in error["message"]


def test_cli_holdout_is_refused_for_members_and_written_for_staff(released_ctx, capsys,
                                                                   tmp_path):
    ctx = released_ctx
    people(ctx)
    out_file = tmp_path / "h.parquet"
    code, out = _run(capsys, ctx.settings, "sandbox", "holdout", "wdbc-malignancy", "--user",
                     MEMBER, "--out", str(out_file), "--format", "json")
    assert code == 2 and json.loads(out)["error"]["code"] == "staff_only"
    code, out = _run(capsys, ctx.settings, "sandbox", "holdout", "wdbc-malignancy", "--user",
                     STAFF, "--out", str(out_file), "--format", "json")
    assert code == 0 and json.loads(out)["rows"] > 0 and out_file.exists()


def test_cli_dry_run_and_rerun(released_ctx, capsys, tmp_path):
    need_isolation()
    ctx = released_ctx
    people(ctx)
    model = tmp_path / "m.onnx"
    model.write_bytes(wdbc_model(ctx))
    code, out = _run(capsys, ctx.settings, "sandbox", "dry-run", "--user", MEMBER, "--task",
                     "wdbc-malignancy", "--model", str(model), "--format", "json")
    assert code == 0 and json.loads(out)["status"] == "completed"
    code, out = _run(capsys, ctx.settings, "sandbox", "rerun", "wdbc-malignancy", "--by", STAFF,
                     "--format", "json")
    assert code == 0 and json.loads(out)["queued_runs"] == []  # nothing released yet


def test_cli_final_submission_budget_and_both_views(released_ctx, capsys, tmp_path):
    need_isolation()
    ctx = released_ctx
    people(ctx)
    model = tmp_path / "model.onnx"
    model.write_bytes(wdbc_model(ctx))
    s = ctx.settings
    code, out = _run(capsys, s, "sandbox", "budget", "wdbc-malignancy", "--user", MEMBER,
                     "--format", "json")
    budget = json.loads(out)
    assert code == 0 and (budget["final_reports_used"], budget["final_reports_limit"]) == (0, 2)
    assert budget["ladder_best"] is None
    code, out = _run(capsys, s, "sandbox", "submit", "--user", MEMBER, "--task",
                     "wdbc-malignancy", "--model", str(model), "--final")
    run_id = out.strip()
    _run(capsys, s, "sandbox", "work", "--once")
    _run(capsys, s, "sandbox", "release", run_id, "--by", STAFF)
    code, out = _run(capsys, s, "sandbox", "report", run_id, "--user", MEMBER)
    released = json.loads(out)
    assert code == 0 and released["view"] == "released" and released["final"] is True
    code, out = _run(capsys, s, "sandbox", "report", run_id, "--user", MEMBER, "--view", "exact")
    assert code == 2 and json.loads(out)["error"]["code"] == "staff_only"
    code, out = _run(capsys, s, "sandbox", "report", run_id, "--user", STAFF)
    assert json.loads(out)["view"] == "exact"
    code, out = _run(capsys, s, "sandbox", "report", run_id, "--user", STAFF, "--view",
                     "released")
    assert json.loads(out) == released
    code, out = _run(capsys, s, "sandbox", "budget", "wdbc-malignancy", "--user", MEMBER,
                     "--format", "json")
    budget = json.loads(out)
    assert budget["final_reports_used"] == 1 and budget["ladder_best"] == \
        released["primary"]["value"] and budget["ladder_submissions"] == 1
