"""A validation report as a CHAI Applied Model Card (schema v0.2) XML document.

The platform fills what it measured and how — ``KeyMetrics`` (usefulness, fairness, safety:
each with its results, ``TestType``, ``TestingDataDescription`` and
``ValidationProcessAndJustification``), the receipt that signs the report, the task's population
and outcome — and takes the narrative (developer, intended users, risks...) from the model card
the team wrote at upload. A field the team left empty says so; nothing is invented. Every text
is escaped by the XML serialiser; characters XML 1.0 cannot carry are dropped.

The schema ships beside this module (``schemas/chai-applied-model-card-v0.2.xsd``); the tests
validate every generated document against it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

NAMESPACE = "https://mc.chai.org/v0.2/schema.xsd"
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "chai-applied-model-card-v0.2.xsd"
DSIG_STUB_PATH = Path(__file__).resolve().parent / "schemas" / "xmldsig-signature-stub.xsd"
NOT_PROVIDED = "Not provided by the developer."
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: Any) -> str:
    return _NOT_XML.sub("", "" if value is None else str(value))


def _fmt(value: Any) -> str:
    return "not estimable" if value is None else f"{value:.3f}"


def _ci(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "not estimable" + (f" ({entry['not_estimable']})"
                                  if entry and entry.get("not_estimable") else "")
    if entry.get("lower") is None:
        return _fmt(entry["value"])
    return f"{_fmt(entry['value'])} (95% CI {_fmt(entry['lower'])}–{_fmt(entry['upper'])})"


def _value_json(entry: dict[str, Any] | float | None) -> str:
    if isinstance(entry, dict):
        keep = {k: entry.get(k) for k in ("value", "lower", "upper", "numerator", "denominator",
                                          "not_estimable") if k in entry}
        return json.dumps(keep, sort_keys=True, allow_nan=False)
    return json.dumps({"value": entry}, allow_nan=False)


class _Builder:
    def __init__(self) -> None:
        ET.register_namespace("", NAMESPACE)
        self.root = ET.Element(f"{{{NAMESPACE}}}AppliedModelCard")

    def add(self, parent: ET.Element, name: str, text: Any = None) -> ET.Element:
        element = ET.SubElement(parent, f"{{{NAMESPACE}}}{name}")
        if text is not None:
            element.text = _text(text)
        return element

    def section(self, name: str, fields: list[tuple[str, Any]],
                parent: ET.Element | None = None) -> ET.Element:
        element = self.add(self.root if parent is None else parent, name)
        for field, text in fields:
            self.add(element, field, text)
        return element


def _testing_data(report: dict[str, Any], card: dict[str, Any]) -> str:
    overall = (report["metrics"] or {}).get("overall")
    release = report["release"]
    copies = card.get("public_copies") or []
    overlap = [c for c in copies if c.get("overlap") == "contains_holdout"]
    cases = (f"{overall['n']} cases, {overall['positives']} with the outcome (prevalence "
             f"{_ci(overall['prevalence'])})" if overall else f"{report['data']['rows']} cases")
    text = (f"The held-out partition of dataset '{release['dataset']}' release "
            f"{release['version']}: {cases}. Persons are assigned to the "
            f"held-out partition by a salted hash of their key; the team never had access to "
            f"these rows. Population: {card.get('question', '').strip()} "
            f"Outcome: {card.get('label_meaning') or 'see the task card label SQL'}.")
    if overlap:
        names = "; ".join(c["name"] for c in overlap)
        text += (f" Caution: public copies of the data contain the held-out cases ({names}); "
                 f"a model trained on them has seen these outcomes.")
    return text


def _validation_process(report: dict[str, Any]) -> str:
    task, receipt = report["task"], report.get("receipt") or {}
    claims = receipt.get("claims") or {}
    return (f"Validation by the platform under task {task['id']} version {task['version']} "
            f"(protocol SHA-256 {task['protocol_hash']}): the published population, label and "
            f"feature SQL ran on the held-out partition; rows were shuffled with a recorded "
            f"seed and only the feature matrix reached the model, "
            f"scored in an isolated process with no network and no labels. Figures were "
            f"computed by the platform (code {report['code_version']}): AUROC with DeLong 95% "
            f"intervals, proportions with Wilson intervals, calibration by logistic "
            f"recalibration; subgroups under {task['min_subgroup_size']} cases are suppressed. "
            f"{_release_rule(report)}"
            f"Signed receipt: {receipt.get('algorithm', 'unsigned')} key "
            f"{receipt.get('key_id', '-')}, report SHA-256 {claims.get('report_sha256', '-')}, "
            f"signature {receipt.get('signature', '-')}.")


def _release_rule(report: dict[str, Any]) -> str:
    rule = report.get("disclosure")
    if report.get("view") != "released" or not rule:
        return ""
    return f"Released figures: {rule.get('mechanism', '')} "


TEST_TYPE = ("Retrospective external validation on a held-out partition the developer never "
             "accessed, run by the platform (internal-temporal split not applied; same source "
             "population as the development data offered to teams).")


def _key_metrics(b: _Builder, report: dict[str, Any], card: dict[str, Any]) -> None:
    figures = report["metrics"]
    testing, process = _testing_data(report, card), _validation_process(report)
    metrics = b.add(b.root, "KeyMetrics")

    def metric(name: str, goal: str, results: list[tuple[str, Any]], interpretation: str) -> None:
        element = b.add(metrics, name)
        b.add(element, "MetricGoal", goal)
        holder = b.add(element, "Results")
        for label, value in results or [("No estimable result", None)]:
            result = b.add(holder, "MetricResult")
            b.add(result, "Label", label)
            b.add(result, "ValueJson", _value_json(value))
        b.add(element, "Interpretation", interpretation)
        b.add(element, "TestType", TEST_TYPE)
        b.add(element, "TestingDataDescription", testing)
        b.add(element, "ValidationProcessAndJustification", process)

    if figures is None:  # not a final submission: the primary metric as the Ladder gives it
        primary = report["primary"]
        label = f"{primary['metric'].upper()} ({primary.get('source') or 'primary'})"
        why = ("Not a final submission: only the primary metric, as the team's Ladder shows "
               "it, is released; the other figures are in a final submission's report.")
        for name, goal in (("UsefulnessUsabilityEfficacy", "Discrimination (primary metric)."),
                           ("FairnessEquity", "Comparable performance across subgroups."),
                           ("SafetyReliability", "Calibrated probabilities.")):
            metric(name, goal, [(label, primary)], f"{label}: {_ci(primary)}. {why}")
        return
    overall = figures["overall"]
    shown_thresholds = [t for t in figures["thresholds"] if not t.get("suppressed")]
    net = [(f"Net benefit at threshold {t['threshold']:g} (treat all: "
            f"{_fmt(t['net_benefit_treat_all'])})", t["net_benefit"])
           for t in shown_thresholds]
    metric("UsefulnessUsabilityEfficacy",
           "Discriminate cases with the outcome from those without, and add net benefit over "
           "treating everyone at the task's decision thresholds.",
           [("AUROC", overall["auroc"]), ("AUPRC (average precision)", overall["auprc"]),
            ("Prevalence", overall["prevalence"]), *net],
           f"AUROC {_ci(overall['auroc'])}; AUPRC {_ci(overall['auprc'])} against a "
           f"prevalence of {_ci(overall['prevalence'])}.")
    shown = [s for s in figures["subgroups"] if not s.get("suppressed")]
    suppressed = [s for s in figures["subgroups"] if s.get("suppressed")]
    metric("FairnessEquity",
           "Comparable discrimination across the task's subgroups.",
           [(f"AUROC, {s['attribute']} = {s['level']} (n = {s['n']})", s["auroc"])
            for s in shown],
           "; ".join(f"{s['attribute']} {s['level']}: {_ci(s['auroc'])}" for s in shown)
           + (f". Suppressed (too few cases): "
              f"{', '.join(s['attribute'] + ' ' + s['level'] for s in suppressed)}."
              if suppressed else ".") if shown or suppressed else "No subgroups defined.")
    calibration = overall.get("calibration") or {}
    at = [(f"Sensitivity at threshold {t['threshold']:g}", t["sensitivity"])
          for t in shown_thresholds]
    at += [(f"Specificity at threshold {t['threshold']:g}", t["specificity"])
           for t in shown_thresholds]
    metric("SafetyReliability",
           "Calibrated probabilities (intercept 0, slope 1) and known error rates at the "
           "decision thresholds.",
           [("Calibration intercept", calibration.get("intercept", calibration)),
            ("Calibration slope", calibration.get("slope", calibration)),
            ("Brier score", overall["brier"]), *at],
           f"Calibration intercept {_ci(calibration.get('intercept', calibration))}, slope "
           f"{_ci(calibration.get('slope', calibration))}; Brier {_ci(overall['brier'])}.")


def build(report: dict[str, Any], card: dict[str, Any], narrative: dict[str, str]) -> str:
    """The Applied Model Card XML for ``report`` (as the viewer may see it), the task card
    summary ``card`` and the team's ``narrative`` (see NARRATIVE_FIELDS in the services)."""
    def said(field: str) -> str:
        return narrative.get(field) or NOT_PROVIDED

    model, release = report["model"], report["release"]
    b = _Builder()
    b.section("BasicInfo", [("ModelName", model["name"]),
                            ("ModelDeveloper", narrative.get("developer") or report["run"]["team"]),
                            ("DeveloperContact", said("contact"))])
    b.section("ReleaseInfo", [("ReleaseStage", "Validated on held-out data (pre-deployment)"),
                              ("ReleaseDate", report["generated_at"][:10]),
                              ("ReleaseVersion", model["version"]),
                              ("GlobalAvailability", said("availability"))])
    summary = b.section("ModelSummary", [("Summary", narrative.get("summary") or (
        f"{model['name']} {model['version']}: {model['intended_use']}"))])
    keywords = b.add(summary, "Keywords")
    for word in ("clinical prediction", card.get("dataset", ""), card.get("id", ""),
                 "external validation"):
        if word:
            b.add(keywords, "Keyword", word)
    b.section("UsesAndDirections", [
        ("IntendedUseAndWorkflow", model["intended_use"]),
        ("PrimaryIntendedUsers", said("intended_users")),
        ("HowToUse", said("how_to_use")),
        ("TargetedPatientPopulation", card.get("question", "").strip()),
        ("CautionedOutOfScopeSettings", said("out_of_scope"))])
    b.section("Warnings", [("KnownRisksAndLimitations", said("risks")),
                           ("KnownBiasesOrEthicalConsiderations", said("biases")),
                           ("ClinicalRiskLevel", said("clinical_risk"))])
    trust = b.add(b.root, "TrustIngredients")
    b.section("AISystemFacts", [
        ("OutcomesAndOutputs", f"A probability per case of: "
                               f"{card.get('label_meaning') or card.get('title', '')}"),
        ("ModelType", narrative.get("model_type") or "Binary classifier (ONNX)"),
        ("InputDataSource", f"{len(report['task']['features'])} features computed by the "
                            f"task's published SQL from dataset '{release['dataset']}': "
                            f"{', '.join(report['task']['features'])}."),
        ("OutputAndInputDataTypes", f"Input: float32 matrix [N, "
                                    f"{len(report['task']['features'])}]; output: probability "
                                    f"of the outcome in [0, 1]."),
        ("DevelopmentDataCharacterization", model["training_data"]),
        ("BiasMitigationApproaches", said("bias_mitigation")),
        ("OngoingMaintenance", said("maintenance"))], parent=trust)
    b.section("TransparencyInformation", [("FundingSource", said("funding")),
                                          ("StakeholdersConsulted", said("stakeholders"))],
              parent=trust)
    _key_metrics(b, report, card)
    b.section("Resources", [
        ("EvaluationReferences", f"Validation report of run {report['run']['id']} "
                                 f"(schema {report['schema']} v{report['schema_version']}), "
                                 f"model SHA-256 {model['sha256']}."),
        ("PeerReviewedPublications", said("publications")),
        ("PatientConsentOrDisclosure", "Validation used de-identified data under the data "
                                       "owner's governance; no patient-level data left the "
                                       "platform.")])
    b.add(b.root, "Bibliography", "")
    ET.indent(b.root)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(b.root, encoding="unicode") + "\n")


def validate(document: str) -> list[str]:
    """Problems of ``document`` against the shipped schema (empty when valid). Needs lxml;
    the XML-DSig import resolves to a local stand-in, so no network is used."""
    from lxml import etree

    class _Local(etree.Resolver):
        def resolve(self, url, pubid, context):  # noqa: ANN001 - lxml's signature
            if url and "xmldsig" in url:
                return self.resolve_filename(str(DSIG_STUB_PATH), context)
            return None

    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    parser.resolvers.add(_Local())
    schema = etree.XMLSchema(etree.parse(str(SCHEMA_PATH), parser))
    doc = etree.fromstring(document.encode("utf-8"),
                           etree.XMLParser(resolve_entities=False, no_network=True))
    if schema.validate(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]
