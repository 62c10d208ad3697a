"""Hostile models, each end to end through the services and a real worker on a real wdbc
release: a clear outcome for the team, an audit record, nothing leaked, the host unaffected and
the next run fine."""

from __future__ import annotations

import os

import numpy as np
import pytest

from portal import audit
from portal.errors import Denied, InvalidUpload, QuotaExceeded
from portal.services import sandbox as services
from sandbox import store
from tests.integration.sandbox.helpers import (
    build_template,
    copy_template,
    held_out,
    need_isolation,
    people,
    run_queue,
    wdbc_model,
    with_fast_tasks,
)
from tests.security import label_attacks as attacks
from tests.unit.sandbox import factories as f
from tests.unit.sandbox.factories import MODEL_CARD

TASK = "wdbc-malignancy"
WIDTH = 30


@pytest.fixture(scope="module")
def wdbc_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("sandbox-security") / "home"
    build_template(home, ("wdbc",))
    return home


@pytest.fixture
def sec(settings, wdbc_home):
    need_isolation()
    base = copy_template(wdbc_home, settings)
    ctx = with_fast_tasks(base, wall_seconds=4)
    member, _, staff = people(ctx)
    yield ctx, member, staff
    base.close()


def _model_files(ctx) -> list[str]:
    return sorted(p.name for p in ctx.settings.models_dir.rglob("*") if p.is_file())


def _next_run_is_fine(ctx, member) -> None:
    run_id = services.submit(ctx, member, TASK, wdbc_model(ctx), MODEL_CARD)
    run_queue(ctx)
    assert services.run_status(ctx, member, run_id)["status"] == "awaiting_review"


INTAKE_CASES = {
    "pickle-renamed-onnx": (f.pickle_bytes, "model_is_pickle"),
    "random-bytes": (lambda: np.random.default_rng(1).bytes(5000), "model_not_onnx"),
    "truncated": (lambda: f.graph_model(WIDTH, "sigmoid")[:60], "model_not_onnx"),
    "external-data-relative": (lambda: f.external_data_model(WIDTH, "../../etc/passwd"),
                               "model_external_data"),
    "external-data-absolute": (lambda: f.external_data_model(WIDTH, "/etc/passwd"),
                               "model_external_data"),
    "custom-op-domain": (lambda: f.custom_op_model(WIDTH), "model_custom_domain"),
    "huge-initializer": (lambda: f.huge_initializer_model(WIDTH), "model_invalid"),
    "wrong-input-name": (lambda: f.graph_model(WIDTH, "sigmoid", input_name="x"),
                         "model_input_mismatch"),
    "wrong-input-width": (lambda: f.graph_model(WIDTH - 1, "sigmoid"), "model_input_mismatch"),
    "wrong-input-type": (lambda: f.wrong_type_model(WIDTH), "model_input_mismatch"),
    "label-output": (lambda: f.label_output_model(WIDTH), "model_output_mismatch"),
}


@pytest.mark.parametrize("case", list(INTAKE_CASES))
def test_hostile_upload_is_refused_at_intake_audited_and_counted_as_an_attempt(sec, case):
    ctx, member, _ = sec
    build, code = INTAKE_CASES[case]
    with pytest.raises(InvalidUpload) as exc:
        services.submit(ctx, member, TASK, build(), MODEL_CARD, f"{case}.onnx")
    assert exc.value.code == code
    assert "passwd" not in exc.value.message and str(ctx.settings.home) not in exc.value.message
    assert _model_files(ctx) == []  # nothing stored
    event = audit.list_events(ctx.conn, action="sandbox.submit")[0]
    assert event.decision == "rejected" and event.reason == code
    used = store.usage(ctx.conn, member.team, TASK)
    assert used == {"attempts": 1, "valid_runs": 0, "dry_runs": 0}
    _next_run_is_fine(ctx, member)


RUNTIME_CASES = {
    "constant-of-shape-40gb": (lambda: f.constant_of_shape_bomb(WIDTH),
                               "resource_limit_exceeded"),
    "endless-loop": (lambda: f.endless_loop_model(WIDTH), "timed_out"),
    "nan-output": (lambda: f.graph_model(WIDTH, "nan"), "invalid_predictions"),
    "inf-output": (lambda: f.graph_model(WIDTH, "inf"), "invalid_predictions"),
    "constant-output": (lambda: f.graph_model(WIDTH, "constant"), "invalid_predictions"),
    "outside-0-1": (lambda: f.graph_model(WIDTH, "above_one"), "invalid_predictions"),
}


@pytest.mark.parametrize("case", list(RUNTIME_CASES))
def test_model_that_misbehaves_when_run_fails_with_a_clear_outcome(sec, case):
    ctx, member, staff = sec
    build, outcome = RUNTIME_CASES[case]
    run_id = services.submit(ctx, member, TASK, build(), MODEL_CARD, f"{case}.onnx")
    run_queue(ctx)
    status = services.run_status(ctx, member, run_id)
    assert status["status"] == "failed" and status["outcome"] == outcome
    assert status["message"] and len(status["message"]) <= 1000
    assert str(ctx.settings.home) not in status["message"] and "/tmp" not in status["message"]
    assert not status["report_available"]
    event = audit.list_events(ctx.conn, action="sandbox.run.finish", target_prefix=f"run:{run_id}")
    assert event[0].decision == "failed" and event[0].reason == outcome
    assert not list(ctx.settings.reports_dir.glob(f"run-{run_id}[.-]*"))
    _next_run_is_fine(ctx, member)


def test_two_gigabyte_upload_is_refused_by_size_without_being_read(sec, tmp_path):
    ctx, member, _ = sec
    big = tmp_path / "big.onnx"
    with open(big, "wb") as fh:
        fh.truncate(2 * 1024**3)
    with open(big, "rb") as fh:
        with pytest.raises(InvalidUpload) as exc:
            services.submit(ctx, member, TASK, fh, MODEL_CARD, big.name)
        assert fh.tell() <= 51 * 1024 * 1024  # refused after reading at most the cap
    assert exc.value.code == "model_too_large"
    assert store.usage(ctx.conn, member.team, TASK)["attempts"] == 1


@pytest.mark.parametrize("name", ["../../etc/passwd.onnx", "mo\"del' ; rm -rf.onnx",
                                  "modèle-ünïcødé-模型.onnx", "a" * 1000 + ".onnx",
                                  "/abs/path/model.onnx"])
def test_hostile_file_names_are_never_used_as_paths(sec, name):
    ctx, member, _ = sec
    run_id = services.submit(ctx, member, TASK, wdbc_model(ctx), MODEL_CARD, name)
    sha = services.run_status(ctx, member, run_id)["model_sha256"]
    assert _model_files(ctx) == [f"{sha}.onnx"]
    event = audit.list_events(ctx.conn, action="sandbox.submit")[0]
    shown = event.details["upload_name"]
    assert "/" not in shown and len(shown) <= 120


def test_resubmitting_past_the_quota_is_refused_and_audited(settings, wdbc_home):
    need_isolation()
    base = copy_template(wdbc_home, settings)
    ctx = with_fast_tasks(base, valid_runs_per_day=2, attempts_per_day=4)
    member, _, _ = people(ctx)
    model = wdbc_model(ctx)
    with pytest.raises(InvalidUpload):  # a failed intake counts as an attempt only
        services.submit(ctx, member, TASK, b"junk", MODEL_CARD)
    for _ in range(2):
        services.submit(ctx, member, TASK, model, MODEL_CARD)
    quota = services.quota_status(ctx, member, services.get_task(ctx, TASK))
    assert quota["valid_runs_used"] == 2 and quota["attempts_used"] == 3
    with pytest.raises(QuotaExceeded) as exc:
        services.submit(ctx, member, TASK, model, MODEL_CARD)
    assert exc.value.code == "valid_run_quota_exceeded"
    assert audit.list_events(ctx.conn, action="sandbox.submit")[0].decision == "denied"
    dry = services.dry_run(ctx, member, TASK, model, MODEL_CARD)  # no validation quota used
    assert dry["status"] == "completed"
    base.close()


def test_failed_intakes_use_up_the_attempt_quota(settings, wdbc_home):
    need_isolation()
    base = copy_template(wdbc_home, settings)
    ctx = with_fast_tasks(base, attempts_per_day=2)
    member, _, _ = people(ctx)
    for _ in range(2):
        with pytest.raises(InvalidUpload):
            services.submit(ctx, member, TASK, b"junk", MODEL_CARD)
    with pytest.raises(QuotaExceeded) as exc:
        services.submit(ctx, member, TASK, wdbc_model(ctx), MODEL_CARD)
    assert exc.value.code == "attempt_quota_exceeded"
    base.close()


def test_labels_never_enter_the_sandbox(sec, monkeypatch):
    """What the parent hands the scorer is the held-out feature matrix, in the run's recorded
    shuffled order, and nothing else: no label column, no labels in any order."""
    import json

    from portal.catalog.releases import current_release
    from sandbox import features, isolation

    ctx, member, _ = sec
    seen = {}
    original = isolation._write_inputs

    def spy(workdir, uid, matrix, input_name):
        original(workdir, uid, matrix, input_name)
        # dot-folders are the scorer's own (onnxruntime's cache), not inputs from the parent
        seen["files"] = sorted(n for n in os.listdir(workdir) if not n.startswith("."))
        seen["meta"] = json.loads((workdir / "meta.json").read_text())
        seen["written"] = np.fromfile(workdir / "features.f32", dtype=np.float32)

    monkeypatch.setattr(isolation, "_write_inputs", spy)
    run_id = services.submit(ctx, member, TASK, wdbc_model(ctx), MODEL_CARD)
    run_queue(ctx)
    assert seen["files"] == ["features.f32", "meta.json", "model.onnx", "stderr.txt"]
    card = services.get_task(ctx, TASK)
    held = features.build_holdout(card, current_release(ctx.conn, ctx.settings, "wdbc")
                                  .holdout_path)
    assert seen["meta"] == {"rows": held.rows, "columns": WIDTH, "input_name": card.input.name}
    assert seen["written"].size == held.rows * WIDTH  # no extra column
    order = features.shuffle_order(held.rows, int(store.get_run(ctx.conn, run_id)["shuffle_seed"]))
    assert not np.array_equal(order, np.arange(held.rows))
    matrix = seen["written"].reshape(held.rows, WIDTH)
    assert np.array_equal(matrix, held.features[order].astype(np.float32))
    assert set(np.unique(held.labels)) == {0, 1}
    assert _columns_carrying_labels(matrix, held.labels, order) == []
    # the check itself can fail: the labels as an extra column, shuffled as handed over, or
    # unshuffled, or rescaled, are each found
    for leaked in (held.labels[order], held.labels, 3.0 * held.labels[order] - 1.0):
        tampered = np.column_stack((matrix, leaked.astype(np.float32)))
        assert _columns_carrying_labels(tampered, held.labels, order) == [WIDTH]


def _columns_carrying_labels(matrix: np.ndarray, labels: np.ndarray,
                             order: np.ndarray) -> list[int]:
    """Columns of the matrix handed to the scorer that are (an affine function of) the labels,
    in the order handed over or in the canonical order."""
    found = []
    for index, column in enumerate(matrix.T.astype(float)):
        for candidate in (labels[order].astype(float), labels.astype(float)):
            if np.std(column) == 0:
                continue
            if abs(np.corrcoef(column, candidate)[0, 1]) > 0.999:
                found.append(index)
                break
    return found


# ---- models that try to read held-out labels from the report --------------------------------

def _without_review(ctx) -> None:
    """The task needs no staff review: only the singling-out check can hold a report."""
    for path in ctx.settings.tasks_dir.glob("*.yaml"):
        path.write_text(path.read_text().replace("review_required: true",
                                                 "review_required: false"))


def _flagged_then_released(ctx, member, staff, model: bytes) -> tuple[dict, dict]:
    """Submit ``model`` as a final submission; check that the singling-out check held it for
    staff; release it anyway (the worst case); return (released report, exact report)."""
    run_id = services.submit(ctx, member, TASK, model, MODEL_CARD, "attack.onnx", final=True)
    run_queue(ctx)
    seen = services.run_status(ctx, member, run_id)
    assert seen["status"] == "awaiting_review" and seen["primary_value"] is None
    with pytest.raises(Denied):
        services.released_report(ctx, member, run_id)
    for_staff = services.run_status(ctx, staff, run_id)
    assert for_staff["flagged"] is True and for_staff["singling_out"]["reasons"]
    finish = audit.list_events(ctx.conn, action="sandbox.run.finish",
                               target_prefix=f"run:{run_id}")[0]
    assert finish.details["flagged"] is True
    services.release_run(ctx, staff, run_id)
    return (services.released_report(ctx, member, run_id),
            services.staff_report(ctx, staff, run_id))


def test_one_case_model_reads_its_label_from_exact_counts_only(sec):
    ctx, member, staff = sec
    _without_review(ctx)
    held = held_out(ctx)
    target = int(np.flatnonzero(held.labels == 1)[0])
    model = attacks.matching_model(WIDTH, held.features[[target]], [attacks.ONE_CASE_HIGH],
                                   attacks.ONE_CASE_LOW)
    released, exact = _flagged_then_released(ctx, member, staff, model)
    assert attacks.read_one_case(exact) == 1  # `tp 1, fp 0` at 0.5: the attack works on exact
    assert attacks.read_one_case(released) is None
    assert all(t["suppressed"] for t in released["metrics"]["thresholds"])
    assert released["metrics"]["reliability"] == [] and released["metrics"]["curves"] == {}


def test_brier_code_model_decodes_twenty_labels_from_exact_and_nothing_from_released(sec):
    ctx, member, staff = sec
    _without_review(ctx)
    held = held_out(ctx)
    targets = [*np.flatnonzero(held.labels == 1)[:10], *np.flatnonzero(held.labels == 0)[:10]]
    truth = [int(held.labels[t]) for t in targets]
    scores = attacks.brier_code_scores(held.rows, targets)[targets]
    model = attacks.matching_model(WIDTH, held.features[targets], scores, attacks.BACKGROUND)
    released, exact = _flagged_then_released(ctx, member, staff, model)
    assert attacks.decode_brier(exact, 20) == truth  # 20 of 20 from the full-precision Brier
    brier = released["metrics"]["overall"]["brier"]
    assert brier == {"value": 0.25}  # on the 0.05 grid: the same for any labels of the 20
    label_free = {"metrics": {"overall": {"n": held.rows, "brier": brier}}}
    assert attacks.decode_brier(released, 20) == attacks.decode_brier(label_free, 20)
    prevalence = float(held.labels.mean())
    assert attacks.recovered_beyond_guessing(attacks.decode_brier(released, 20), truth,
                                             prevalence) <= 0


def test_two_final_models_that_differ_in_one_row_are_flagged(sec):
    """Two final reports can be differenced: 20 known cases (10 of each outcome) scored high,
    then the same plus one. Each report alone meets the cell minimum, and their counts at 0.5
    differ by the extra case's label — so the second run is flagged and held for staff."""
    ctx, member, staff = sec
    _without_review(ctx)
    held = held_out(ctx)
    targets = [*np.flatnonzero(held.labels == 1)[:11], *np.flatnonzero(held.labels == 0)[:10]]
    first_rows, extra = targets[1:], targets[0]

    def model(rows):
        return attacks.matching_model(WIDTH, held.features[rows], [attacks.ONE_CASE_HIGH] *
                                      len(rows), attacks.ONE_CASE_LOW)

    first = services.submit(ctx, member, TASK, model(first_rows), MODEL_CARD, final=True)
    run_queue(ctx)
    assert services.run_status(ctx, member, first)["status"] == "completed"  # not flagged
    second = services.submit(ctx, member, TASK, model(targets), MODEL_CARD, final=True)
    run_queue(ctx)
    check = services.run_status(ctx, staff, second)["singling_out"]
    assert services.run_status(ctx, member, second)["status"] == "awaiting_review"
    assert check["flagged"] and any(f"since final run {first}" in r for r in check["reasons"])
    services.release_run(ctx, staff, second)  # released anyway: what the flag warned of
    counts = [next(t for t in services.released_report(ctx, member, r)["metrics"]["thresholds"]
                   if t["threshold"] == 0.5)["counts"] for r in (first, second)]
    assert counts[1]["tp"] - counts[0]["tp"] == int(held.labels[extra])
