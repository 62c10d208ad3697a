"""Receipts bind a report to its provenance; the HTML escapes everything it shows."""

from __future__ import annotations

import copy

import numpy as np

from sandbox import metrics, receipts, report


def _report(settings, title: str = "Task") -> dict:
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.4).astype(float)
    p = np.clip(0.4 + 0.3 * (y - 0.4) + rng.normal(0, 0.2, 300), 0, 1)
    figures = metrics.compute(y, p, [0.2, 0.5], {"sex": np.where(p > 0.5, "F", "M")}, 10)
    body = report.build(
        run={"id": 7, "kind": "validation"},
        model={"sha256": "a" * 64, "name": "m", "version": "1"},
        release={"dataset": "wdbc", "version": "2026.11.28-1"},
        task={"id": "t", "version": 1, "protocol_hash": "b" * 64, "title": title,
              "question": "Does it work?", "primary_metric": "auroc", "min_subgroup_size": 10},
        data={"rows": 300}, scoring={"seconds": 0.1}, figures=figures,
        code_version=receipts.code_version(), generated_at="2026-11-28T00:00:00Z")
    body["receipt"] = receipts.sign(settings, body, {
        "run_id": 7, "model_sha256": "a" * 64, "release_version": "2026.11.28-1",
        "protocol_hash": "b" * 64, "code_version": body["code_version"],
        "generated_at": body["generated_at"]})
    return body


def test_signed_report_verifies_with_the_platform_key(settings):
    ok, reason = receipts.verify(settings, _report(settings))
    assert ok, reason


def test_any_change_to_figures_or_provenance_breaks_verification(settings):
    original = _report(settings)
    for mutate in (lambda r: r["metrics"]["overall"]["auroc"].__setitem__("value", 0.99),
                   lambda r: r["model"].__setitem__("sha256", "c" * 64),
                   lambda r: r["release"].__setitem__("version", "other"),
                   lambda r: r["receipt"]["claims"].__setitem__("release_version", "other"),
                   lambda r: r["receipt"].__setitem__("signature", "AAAA"),
                   lambda r: r.pop("receipt")):
        tampered = copy.deepcopy(original)
        mutate(tampered)
        assert not receipts.verify(settings, tampered)[0]


def test_report_signed_by_another_installation_does_not_verify(settings, tmp_path):
    from portal.config import Settings

    other = Settings.from_env({"PORTAL_HOME": str(tmp_path / "other")})
    assert not receipts.verify(settings, _report(other))[0]


def test_html_report_escapes_text_and_draws_four_plots(settings):
    body = _report(settings, title="<script>alert(1)</script>")
    page = report.render_html(body)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert page.count("<svg") == 4
    for heading in ("ROC curve", "Precision-recall", "Calibration", "Subgroup AUROC"):
        assert heading in page
    assert body["model"]["sha256"] in page and body["task"]["protocol_hash"] in page


def test_code_version_names_the_package_and_a_hash_of_the_sandbox_code():
    version = receipts.code_version()
    assert "+" in version and len(version.split("+")[1]) == 12
