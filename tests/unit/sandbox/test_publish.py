"""The released report's store state on both engines: the Ladder's arithmetic, the final-report
count, and publishing a released report from an exact one (receipt binding both)."""

from __future__ import annotations

import numpy as np
import pytest

from portal.services import sandbox as services
from portal.store.db import transaction
from sandbox import metrics, publish, receipts, runner, store
from tests.factories import make_validation_run
from tests.store_engines import ENGINES

TASK = "wdbc-malignancy"


@pytest.fixture(params=ENGINES)
def store_engine(request) -> str:
    return request.param


def _submit(ctx, value, run_id, metric="auroc"):
    with transaction(ctx.conn):
        return store.ladder_submit(ctx.conn, team="acme-health", task_id=TASK, task_version=1,
                                   metric=metric, value=value, run_id=run_id, margin=0.05,
                                   step=0.05)


def test_the_ladder_keeps_the_best_and_counts_submissions_and_updates(ctx):
    runs = [make_validation_run(ctx) for _ in range(4)]
    assert _submit(ctx, 0.812, runs[0])["best"] == 0.8  # the first sets it, on the grid
    second = _submit(ctx, 0.849, runs[1])  # better, but not by more than the margin
    assert (second["best"], second["improved"]) == (0.8, False)
    third = _submit(ctx, 0.871, runs[2])
    assert (third["best"], third["improved"]) == (0.85, True)
    fourth = _submit(ctx, 0.5, runs[3])
    assert fourth == {"metric": "auroc", "best": 0.85, "improved": False, "submissions": 4,
                      "updates": 2, "margin": 0.05}
    row = store.ladder(ctx.conn, "acme-health", TASK, 1)
    assert row["best_run_id"] == runs[2] and row["best_value"] == 0.85
    assert store.ladder(ctx.conn, "beta-bio", TASK, 1) is None  # per team


def test_final_reports_count_queued_and_finished_finals_but_not_failed_ones(ctx):
    card = services.get_task(ctx, TASK)
    with transaction(ctx.conn):
        model = store.insert_model(ctx.conn, sha256="0" * 64, size_bytes=1, team="acme-health",
                                   uploaded_by="t", name="m", model_version="1",
                                   intended_use="t", training_data="t")
        ids = [store.insert_run(ctx.conn, kind="validation", card=card, team="acme-health",
                                requested_by="t", model_id=model, final=final)
               for final in (True, True, False, True)]
        store.insert_run(ctx.conn, kind="dry_run", card=card, team="acme-health",
                         requested_by="t", model_id=model, final=True)  # never final
    assert store.final_reports_used(ctx.conn, "acme-health", TASK, card.version) == 3
    with transaction(ctx.conn):
        store.set_status(ctx.conn, ids[3], "running")
        store.set_status(ctx.conn, ids[3], "failed", outcome="timed_out")
    assert store.final_reports_used(ctx.conn, "acme-health", TASK, card.version) == 2
    assert store.final_reports_used(ctx.conn, "beta-bio", TASK, card.version) == 0


def _exact_report(ctx, run_id: int) -> str:
    card = services.get_task(ctx, TASK)
    rng = np.random.default_rng(2)
    y = (rng.random(400) < 0.4).astype(float)
    p = 1 / (1 + np.exp(-(rng.normal(size=400) + 1.5 * (y - 0.4))))
    figures = metrics.compute(y, p, list(card.thresholds), {}, card.subgroups.min_size)
    run = store.get_run(ctx.conn, run_id)
    body = runner._report_body(card, run, {"dataset": "wdbc", "version": "v1"},
                               {"rows": 400, "shuffle_seed": 1, "synthetic": False},
                               {"seconds": 0.1, "isolated": True}, figures)
    body["receipt"] = receipts.sign(ctx.settings, body, publish._bound(body))
    return runner.write_report(ctx.settings, run_id, body)


@pytest.mark.parametrize("final", [False, True])
def test_publishing_makes_a_signed_released_report_from_the_exact_one(ctx, final):
    run_id = make_validation_run(ctx)
    name = _exact_report(ctx, run_id)
    with transaction(ctx.conn):
        ctx.conn.execute("UPDATE sandbox_runs SET report_file = ?, final_report = ? WHERE id = ?",
                         (name, int(final), run_id))
        released = publish.publish(ctx.settings, ctx.conn, run_id)
    run = store.get_run(ctx.conn, run_id)
    exact = publish.read_exact(ctx.settings, run)
    assert publish.read_released(ctx.settings, run) == released
    assert run["released_primary"] == released["primary"]["value"]
    assert released["view"] == "released" and released["final"] is final
    assert released["primary"]["value"] == round(round(exact["primary"]["value"] / 0.05) * 0.05, 2)
    assert (released["metrics"] is not None) is final
    assert receipts.verify(ctx.settings, released, exact=exact) == \
        (True, "signature valid; report unchanged since it was signed")
    exact["nonce"] = "0" * 32  # another exact report: the binding fails
    assert receipts.verify(ctx.settings, released, exact=exact)[0] is False
    assert "nonce" not in released and "score_cells" not in (released["metrics"] or {})
    assert store.ladder(ctx.conn, "acme-health", TASK, 1)["submissions"] == 1
