"""The CHAI Applied Model Card export validates against the shipped v0.2 schema and carries the
platform's figures, the receipt and the team's narrative; the TRIPOD+AI checklist covers every
item and says where the platform's answers are."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import numpy as np
import pytest

from portal.services.sandbox import task_summary
from sandbox import metrics, modelcard, receipts, report, tripod
from sandbox.tasks import load_cards
from tests.unit.sandbox.test_tasks import TASKS

NS = {"mc": modelcard.NAMESPACE}


def full_report(settings) -> dict:
    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.35).astype(float)
    p = np.clip(0.35 + 0.35 * (y - 0.35) + rng.normal(0, 0.2, 400), 0, 1)
    groups = {"tumour_size": np.where(rng.random(400) < 0.5, "small", "large"),
              "rare": np.where(rng.random(400) < 0.01, "few", "many")}
    figures = metrics.compute(y, p, [0.1, 0.3, 0.5], groups, 10)
    body = report.build(
        run={"id": 12, "kind": "validation", "team": "acme-health", "requested_by": "a@b",
             "created_at": "2026-12-01T00:00:00Z", "rerun_of": None},
        model={"sha256": "a" * 64, "name": "Malignancy <LR> & co", "version": "1.2",
               "intended_use": "Triage of breast masses", "training_data": "WDBC dev rows",
               "size_bytes": 100},
        release={"dataset": "wdbc", "version": "2026.12.01-1"},
        task={"id": "wdbc-malignancy", "version": 1, "protocol_hash": "b" * 64,
              "title": "Malignancy", "question": "Q?", "primary_metric": "auroc",
              "thresholds": [0.1, 0.3, 0.5], "min_subgroup_size": 10,
              "features": ["mean_radius", "mean_texture"]},
        data={"rows": 400, "shuffle_seed": 569, "synthetic": False},
        scoring={"seconds": 0.1, "isolated": True}, figures=figures,
        code_version=receipts.code_version(), generated_at="2026-12-01T10:00:00Z")
    body["receipt"] = receipts.sign(settings, body, {
        "run_id": 12, "model_sha256": "a" * 64, "release_version": "2026.12.01-1",
        "protocol_hash": "b" * 64, "code_version": body["code_version"],
        "generated_at": body["generated_at"]})
    return body


@pytest.fixture
def wdbc_card():
    return task_summary(load_cards(TASKS)["wdbc-malignancy"])


def test_model_card_validates_against_the_chai_v02_schema(settings, wdbc_card):
    document = modelcard.build(full_report(settings), wdbc_card,
                               {"developer": "Acme Health", "risks": "Not for screening\x07"})
    assert modelcard.validate(document) == []
    root = ET.fromstring(document)
    assert root.tag == f"{{{modelcard.NAMESPACE}}}AppliedModelCard"
    assert root.findtext("mc:BasicInfo/mc:ModelName", namespaces=NS) == "Malignancy <LR> & co"
    assert root.findtext("mc:BasicInfo/mc:ModelDeveloper", namespaces=NS) == "Acme Health"
    assert root.findtext("mc:Warnings/mc:KnownRisksAndLimitations",
                         namespaces=NS) == "Not for screening"
    assert root.findtext("mc:Warnings/mc:ClinicalRiskLevel",
                         namespaces=NS) == modelcard.NOT_PROVIDED


def test_key_metrics_carry_results_test_type_testing_data_and_the_receipt(settings, wdbc_card):
    body = full_report(settings)
    root = ET.fromstring(modelcard.build(body, wdbc_card, {}))
    metrics_ = root.find("mc:KeyMetrics", NS)
    names = [child.tag.split("}")[1] for child in metrics_]
    assert names == ["UsefulnessUsabilityEfficacy", "FairnessEquity", "SafetyReliability"]
    usefulness = metrics_.find("mc:UsefulnessUsabilityEfficacy", NS)
    labels = [r.findtext("mc:Label", namespaces=NS) for r in usefulness.iter(
        f"{{{modelcard.NAMESPACE}}}MetricResult")]
    assert labels[0] == "AUROC"
    import json

    auroc = json.loads(usefulness.find("mc:Results/mc:MetricResult/mc:ValueJson", NS).text)
    assert auroc["value"] == pytest.approx(body["metrics"]["overall"]["auroc"]["value"])
    for metric in metrics_:
        assert "held-out" in metric.findtext("mc:TestType", namespaces=NS)
        testing = metric.findtext("mc:TestingDataDescription", namespaces=NS)
        assert "400 cases" in testing and "load_breast_cancer" in testing
        process = metric.findtext("mc:ValidationProcessAndJustification", namespaces=NS)
        assert body["receipt"]["signature"] in process and "b" * 64 in process
    fairness = metrics_.find("mc:FairnessEquity", NS).findtext("mc:Interpretation",
                                                                namespaces=NS)
    assert "Suppressed" in fairness and "rare few" in fairness


def test_a_document_missing_a_required_section_fails_validation(settings, wdbc_card):
    document = modelcard.build(full_report(settings), wdbc_card, {})
    broken = document.replace("<Bibliography />", "").replace("<Bibliography></Bibliography>",
                                                               "")
    assert broken != document
    assert modelcard.validate(broken)


def test_tripod_checklist_lists_every_item_and_where_the_platform_filled_it(settings,
                                                                          wdbc_card):
    rows = tripod.checklist(full_report(settings), wdbc_card)
    assert [r["item"] for r in rows] == [item for item, _, _ in tripod.ITEMS]
    assert len({r["item"].rstrip("abcdefg") for r in rows}) == 27
    by_item = {r["item"]: r for r in rows}
    for item in ("8a", "9b", "12e", "18c", "20a", "23a"):
        assert by_item[item]["status"] == "filled" and by_item[item]["where"]
    assert "malignant" in by_item["8a"]["platform_states"]
    assert by_item["1"]["status"] == "team"
    text = tripod.to_markdown(rows, "Malignancy | LR")
    assert text.count("\n|") == len(rows) + 2 and "Malignancy \\| LR" in text


@pytest.mark.parametrize("final", [True, False])
def test_model_card_of_a_released_report_validates_and_keeps_its_limits(settings, wdbc_card,
                                                                        final):
    from sandbox import publish

    exact = full_report(settings)
    released = publish.released_body(
        exact, final=final, min_cell=10,
        ladder={"best": 0.9, "improved": True, "margin": 0.05, "updates": 1, "submissions": 1},
        budget={"final_reports_used": 1, "final_reports_limit": 2},
        generated_at="2026-12-01T11:00:00Z")
    document = modelcard.build(released, wdbc_card, {})
    assert modelcard.validate(document) == []
    if not final:
        assert "Not a final submission" in document and "(ladder)" in document
        assert str(exact["metrics"]["overall"]["auroc"]["value"]) not in document
    rows = tripod.checklist(released, wdbc_card)
    assert len(rows) == len(tripod.ITEMS)
