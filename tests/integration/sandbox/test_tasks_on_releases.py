"""Bundled tasks against real releases: the eunomia GI-bleed task (grant required, subgroups),
dry runs on the synthetic twin, and the holdout export."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from portal import audit
from portal.errors import Denied
from portal.services import sandbox as services
from sandbox import store
from tests.factories_access import make_grant
from tests.integration.sandbox.helpers import (
    dev_training_data,
    need_isolation,
    people,
    run_queue,
    wdbc_model,
)
from tests.unit.sandbox import factories as f
from tests.unit.sandbox.factories import MODEL_CARD


def test_eunomia_task_needs_a_grant_then_reports_subgroups(released_ctx):
    need_isolation()
    ctx = released_ctx
    member, _, staff = people(ctx)
    X, y = dev_training_data(ctx, "eunomia-gi-bleed")
    assert X.shape[1] == 6 and 0 < y.mean() < 1
    model = f.logistic_onnx(X, y)
    with pytest.raises(Denied) as exc:
        services.submit(ctx, member, "eunomia-gi-bleed", model, MODEL_CARD)
    assert exc.value.code == "no_grant"
    assert audit.list_events(ctx.conn, action="sandbox.submit")[0].reason == "no_grant"
    make_grant(ctx, "acme-health", "eunomia", "row-level")
    run_id = services.submit(ctx, member, "eunomia-gi-bleed", model, MODEL_CARD, final=True)
    run_queue(ctx)
    services.release_run(ctx, staff, run_id)
    document = services.released_report(ctx, member, run_id)
    overall = document["metrics"]["overall"]
    assert overall["n"] > 100 and 0 < overall["prevalence"]["value"] < 1
    assert overall["auroc"]["value"] is not None
    attributes = {s["attribute"] for s in document["metrics"]["subgroups"]}
    assert attributes == {"sex", "age_band", "race", "ethnicity"}
    for entry in document["metrics"]["subgroups"]:  # a minimum of positives and negatives
        assert entry["suppressed"] or (entry["positives"] >= 11 and
                                       entry["n"] - entry["positives"] >= 11)


def test_dry_run_scores_the_synthetic_twin_without_using_quota(released_ctx):
    need_isolation()
    ctx = released_ctx
    member, _, _ = people(ctx)
    status = services.dry_run(ctx, member, "wdbc-malignancy", wdbc_model(ctx), MODEL_CARD)
    assert status["status"] == "completed" and "Dry run passed" in status["message"]
    assert not status["report_available"]
    used = store.usage(ctx.conn, member.team, "wdbc-malignancy")
    assert used["valid_runs"] == 0 and used["attempts"] == 0 and used["dry_runs"] == 1


def test_dry_run_shows_runtime_errors_without_spending_quota(released_ctx):
    need_isolation()
    ctx = released_ctx
    member, _, _ = people(ctx)
    status = services.dry_run(ctx, member, "wdbc-malignancy", f.graph_model(30, "nan"),
                              MODEL_CARD)
    assert status["status"] == "failed" and status["outcome"] == "invalid_predictions"
    assert store.usage(ctx.conn, member.team, "wdbc-malignancy")["valid_runs"] == 0


def test_holdout_export_is_staff_only_and_audited(released_ctx, tmp_path):
    ctx = released_ctx
    member, _, staff = people(ctx)
    out = tmp_path / "holdout.parquet"
    with pytest.raises(Denied):
        services.export_holdout(ctx, member, "wdbc-malignancy", out)
    assert not out.exists()
    rows = services.export_holdout(ctx, staff, "wdbc-malignancy", out)
    table = pq.read_table(out)
    assert table.num_rows == rows > 0
    assert {"row_id", "label", "mean_radius", "group_tumour_size"} <= set(table.column_names)
    events = audit.list_events(ctx.conn, action="sandbox.holdout.export")
    assert [e.decision for e in events] == ["done", "denied"]
    assert "rows" in events[0].details and "label" not in str(events[0].details)
