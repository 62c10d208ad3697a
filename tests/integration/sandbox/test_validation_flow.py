"""A model's whole journey on a real wdbc release: submit, work, review, release, report,
receipt — with real ONNX, real isolation, real DuckDB and SQLite."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from portal import audit
from portal.errors import Denied, NotFound, QuotaExceeded, Rejected
from portal.services import sandbox as services
from sandbox import receipts
from tests.integration.sandbox.helpers import need_isolation, people, run_queue, wdbc_model
from tests.unit.sandbox.factories import MODEL_CARD


@pytest.fixture
def flow(released_ctx):
    need_isolation()
    member, other, staff = people(released_ctx)
    return released_ctx, member, other, staff


def test_submitted_model_is_validated_reviewed_and_released_to_its_team(flow):
    ctx, member, other, staff = flow
    run_id = services.submit(ctx, member, "wdbc-malignancy", wdbc_model(ctx), MODEL_CARD,
                             "model.onnx")
    assert services.run_status(ctx, member, run_id)["status"] == "queued"
    assert run_queue(ctx) == 1
    status = services.run_status(ctx, member, run_id)
    assert status["status"] == "awaiting_review"
    assert status["primary_value"] is None  # nothing leaks before review
    with pytest.raises(Denied) as denied:
        services.report(ctx, member, run_id)
    assert denied.value.code == "report_not_released"
    with pytest.raises(NotFound):
        services.run_status(ctx, other, run_id)
    with pytest.raises(Denied):
        services.release_run(ctx, member, run_id)
    services.release_run(ctx, staff, run_id)
    document = services.released_report(ctx, member, run_id)
    assert document["schema_version"] == 2 and document["view"] == "released"
    assert document["release"]["dataset"] == "wdbc" and document["release"]["version"]
    assert document["task"]["protocol_hash"] == services.get_task(ctx, "wdbc-malignancy") \
        .protocol_hash
    exact = services.staff_report(ctx, staff, run_id)
    assert exact["view"] == "exact" and exact["primary"]["value"] > 0.9
    # not a final submission: the Ladder's figure on the grid, nothing else
    assert document["final"] is False and document["metrics"] is None
    assert document["primary"]["metric"] == "auroc" and document["primary"]["source"] == "ladder"
    assert document["primary"]["value"] == round(round(exact["primary"]["value"] / 0.05) * 0.05, 2)
    assert document["data"] == {"rows": exact["data"]["rows"], "synthetic": False}
    assert "nonce" not in document and "review" not in document
    assert services.run_status(ctx, member, run_id)["primary_value"] == \
        document["primary"]["value"]
    html = services.released_report(ctx, member, run_id, "html")
    assert "Ladder best" in html and "<svg" not in html
    assert receipts.verify(ctx.settings, document)[0]
    assert receipts.verify(ctx.settings, document, exact=exact)[0]
    assert receipts.verify(ctx.settings, exact)[0]
    actions = [e.action for e in audit.list_events(ctx.conn, target_prefix=f"run:{run_id}")]
    assert {"sandbox.submit", "sandbox.run.finish", "sandbox.run.release",
            "sandbox.report.view"} <= set(actions)
    assert audit.verify(ctx.conn).ok


def test_withheld_run_shows_its_reason_and_no_report(flow):
    ctx, member, _, staff = flow
    run_id = services.submit(ctx, member, "wdbc-malignancy", wdbc_model(ctx), MODEL_CARD)
    run_queue(ctx)
    services.withhold_run(ctx, staff, run_id, "Results under discussion with the data owner")
    status = services.run_status(ctx, member, run_id)
    assert status["status"] == "withheld"
    assert status["review_reason"] == "Results under discussion with the data owner"
    with pytest.raises(Denied):
        services.report(ctx, member, run_id)
    with pytest.raises(Rejected):  # withheld runs cannot be withheld again
        services.withhold_run(ctx, staff, run_id, "again")


def test_same_model_on_same_task_version_gives_identical_figures(flow):
    ctx, member, _, staff = flow
    model = wdbc_model(ctx)
    first = services.submit(ctx, member, "wdbc-malignancy", model, MODEL_CARD)
    second = services.submit(ctx, member, "wdbc-malignancy", model, MODEL_CARD)
    run_queue(ctx)
    a, b = (services.report(ctx, staff, r)["metrics"] for r in (first, second))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_a_final_submission_gets_the_full_released_report_and_the_budget_is_enforced(flow):
    ctx, member, _, staff = flow
    model = wdbc_model(ctx)
    card = services.get_task(ctx, "wdbc-malignancy")
    ids = [services.submit(ctx, member, card.id, model, MODEL_CARD, final=True)
           for _ in range(card.disclosure.final_reports)]
    with pytest.raises(QuotaExceeded) as refused:
        services.submit(ctx, member, card.id, model, MODEL_CARD, final=True)
    assert refused.value.code == "final_report_quota_exceeded"
    quota = services.quota_status(ctx, member, card)
    assert quota["final_reports_used"] == quota["final_reports_limit"] == 2
    run_queue(ctx)
    for run_id in ids:
        services.release_run(ctx, staff, run_id)
    first, second = (services.released_report(ctx, member, r) for r in ids)
    exact = services.staff_report(ctx, staff, ids[0])
    assert first["final"] is True and first["primary"]["source"] == "this submission"
    overall = first["metrics"]["overall"]
    assert overall["grid_step"] == 0.05 and "se" not in overall["auroc"]
    for figure in ("auroc", "brier"):
        value = overall[figure]["value"]
        assert value == round(round(exact["metrics"]["overall"][figure]["value"] / 0.05) * 0.05,
                              2)
    assert "score_cells" not in first["metrics"] and "review" not in first
    assert first["budget"] == {"final_reports_used": 2, "final_reports_limit": 2}
    # the Ladder: the same model again does not beat the best, so the best stays
    assert first["ladder"]["improved"] is True and second["ladder"]["improved"] is False
    assert second["ladder"]["best"] == first["ladder"]["best"]
    assert services.quota_status(ctx, member, card)["ladder_submissions"] == 2
    html = services.released_report(ctx, member, ids[0], "html")
    assert "Released figures" in html and "ROC curve" in html


def test_report_figures_agree_with_scikit_learn_on_the_same_predictions(flow):
    ctx, member, _, staff = flow
    run_id = services.submit(ctx, member, "wdbc-malignancy", wdbc_model(ctx), MODEL_CARD)
    run_queue(ctx)
    out = ctx.settings.home.parent / "holdout.parquet"  # exports are refused inside the home
    services.export_holdout(ctx, staff, "wdbc-malignancy", out)
    import onnxruntime as ort
    import pyarrow.parquet as pq

    table = pq.read_table(out).to_pydict()
    card = services.get_task(ctx, "wdbc-malignancy")
    X = np.column_stack([table[name] for name in card.feature_names]).astype(np.float32)
    y = np.asarray(table["label"])
    from sandbox.runner import model_path

    sha = services.run_status(ctx, staff, run_id)["model_sha256"]
    session = ort.InferenceSession(model_path(ctx.settings, sha).read_bytes(),
                                   providers=["CPUExecutionProvider"])
    p = session.run(None, {"input": X})[1][:, 1].astype(float)
    overall = services.report(ctx, staff, run_id)["metrics"]["overall"]
    assert abs(overall["auroc"]["value"] - roc_auc_score(y, p)) < 1e-9
    assert abs(overall["auprc"]["value"] - average_precision_score(y, p)) < 1e-9
    assert overall["n"] == len(y)


def test_tampered_report_fails_verification(flow, tmp_path):
    ctx, member, _, staff = flow
    run_id = services.submit(ctx, member, "wdbc-malignancy", wdbc_model(ctx), MODEL_CARD)
    run_queue(ctx)
    document = services.report(ctx, staff, run_id)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(document))
    assert services.verify_report(ctx, good)["ok"]
    document["metrics"]["overall"]["auroc"]["value"] = 0.999
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    result = services.verify_report(ctx, bad)
    assert not result["ok"] and "changed" in result["reason"]


def test_staff_rerun_on_a_new_release_says_which_release_it_used(flow):
    from portal.catalog.builder import build_release

    ctx, member, _, staff = flow
    run_id = services.submit(ctx, member, "wdbc-malignancy", wdbc_model(ctx), MODEL_CARD)
    run_queue(ctx)
    services.release_run(ctx, staff, run_id)
    old_version = services.run_status(ctx, staff, run_id)["release_version"]
    build_release(ctx.settings, ctx.conn, "wdbc", actor=staff.email)
    new_ids = services.rerun_latest(ctx, staff, "wdbc-malignancy")
    assert len(new_ids) == 1
    run_queue(ctx)
    rerun = services.run_status(ctx, staff, new_ids[0])
    assert rerun["rerun_of"] == run_id and rerun["status"] == "awaiting_review"
    assert rerun["release_version"] and rerun["release_version"] != old_version
    assert services.report(ctx, staff, new_ids[0])["release"]["version"] == \
        rerun["release_version"]
