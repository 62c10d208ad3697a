"""Validation sandbox: end-to-end run time against in-process scoring, and metric agreement.

For a synthetic task with a 100,000-row held-out set (20 features), two models exported to ONNX
(logistic regression; 100-tree gradient boosting) are run end to end — claim, held-out features
from DuckDB, isolated one-shot scoring, metrics with intervals, report and receipt — and compared
with scoring the same model in-process with onnxruntime plus the same metrics in-process
(measured in the same run, interleaved, best of 5). Goal: sandbox ≤ 1.5 × baseline + 0.3 s.
Then the metrics' largest absolute difference from scikit-learn on the same predictions
(goal ≤ 1e-9).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

WIDTH = 20


def _write_release(settings, conn, rows: int) -> None:
    from portal.catalog.releases import register_release

    directory = settings.releases_dir / "benchdata" / "v1"
    directory.mkdir(parents=True, exist_ok=True)
    columns = ", ".join(f"(random() * 2 - 1 + CASE WHEN i % 7 = 0 THEN 0.3 ELSE 0 END) AS f{j}"
                        for j in range(WIDTH))
    for part, n in (("dev", 20_000), ("holdout", rows)):
        con = duckdb.connect(str(directory / f"{part}.duckdb"))
        con.execute("SELECT setseed(0.42)")
        con.execute(f"CREATE TABLE t AS SELECT i AS case_id, {columns},"
                    " CASE WHEN i % 2 = 0 THEN 'F' ELSE 'M' END AS sex FROM range(?) r(i)", [n])
        con.execute("ALTER TABLE t ADD COLUMN label INTEGER")
        con.execute("UPDATE t SET label = CASE WHEN f0 + 0.5 * f1 + (random() - 0.5) > 0"
                    " THEN 1 ELSE 0 END")
        con.close()
    card = {"dataset": "benchdata", "version": "v1", "tables": {"t": {
        "person_column": "case_id", "dev_rows": 20_000, "holdout_rows": rows, "columns": []}}}
    (directory / "card.json").write_text(json.dumps(card))
    (directory / "report.json").write_text("{}")
    register_release(conn, dataset_id="benchdata", title="bench", version="v1",
                     relative_directory="benchdata/v1", manifest_hash="bench",
                     built_by="bench", summary={})


def _task_card(folder: Path) -> None:
    features = ", ".join(f"f{j}" for j in range(WIDTH))
    columns = "\n".join(f"    - {{name: f{j}, type: float}}" for j in range(WIDTH))
    (folder / "bench.yaml").write_text(f"""id: bench-100k
version: 1
dataset: benchdata
title: "Benchmark task"
question: "How fast is an end-to-end validation on 100,000 held-out rows?"
population_sql: "SELECT case_id AS row_id, sex FROM t"
label_sql: "SELECT case_id AS row_id, label FROM t"
features:
  sql: "SELECT case_id AS row_id, {features} FROM t"
  columns:
{columns}
input: {{name: input}}
metrics: [auroc, auprc, brier, calibration, thresholds, net_benefit]
primary_metric: auroc
thresholds: [0.2, 0.5]
subgroups: {{min_size: 10, groups: [{{name: sex, column: sex}}]}}
quotas: {{valid_runs_per_day: 100, attempts_per_day: 100}}
limits: {{wall_seconds: 300, memory_mb: 4096}}
review_required: false
grant_required: false
""")


def _models() -> dict[str, bytes]:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(5000, WIDTH)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.uniform(-0.5, 0.5, 5000) > 0).astype(int)
    out = {}
    for name, model in (("logistic regression", LogisticRegression(max_iter=500)),
                        ("gradient boosting (100 trees)",
                         GradientBoostingClassifier(n_estimators=100, max_depth=3))):
        model.fit(X, y)
        out[name] = to_onnx(model, initial_types=[("input", FloatTensorType([None, WIDTH]))],
                            options={id(model): {"zipmap": False}},
                            target_opset=17).SerializeToString()
    return out


def _baseline(model: bytes, held, card) -> tuple[float, np.ndarray]:
    import onnxruntime as ort

    from sandbox import metrics

    started = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model, sess_options=options,
                                   providers=["CPUExecutionProvider"])
    p = session.run(None, {"input": held.features})[1][:, 1].astype(float)
    metrics.compute(held.labels, p, list(card.thresholds), held.groups, card.subgroups.min_size)
    return time.perf_counter() - started, p


def _agreement(held, p) -> float:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    from sandbox import metrics

    y = held.labels
    diffs = [abs(metrics.auroc_delong(y, p)["value"] - roc_auc_score(y, p)),
             abs(metrics.average_precision(y, p) - average_precision_score(y, p)),
             abs(metrics.brier(y, p) - brier_score_loss(y, p))]
    for level in np.unique(held.groups["sex"]):
        mask = held.groups["sex"] == level
        diffs.append(abs(metrics.auroc_delong(y[mask], p[mask])["value"]
                         - roc_auc_score(y[mask], p[mask])))
    return max(diffs)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench sandbox")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    from portal.catalog.releases import current_release
    from portal.config import Settings
    from portal.identity import principal_for_email
    from portal.services import sandbox as services
    from portal.services.context import Context
    from portal.store import people
    from portal.store.db import transaction
    from sandbox import features, isolation, worker

    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        tasks_dir = Path(tmp) / "tasks"
        tasks_dir.mkdir()
        _task_card(tasks_dir)
        isolated = isolation.isolation_available()
        env = {"PORTAL_HOME": f"{tmp}/home", "PORTAL_TASKS_DIR": str(tasks_dir),
               "PORTAL_SANDBOX_ALLOW_UNISOLATED": "false" if isolated else "true"}
        ctx = Context.open(Settings.from_env(env))
        _write_release(ctx.settings, ctx.conn, args.rows)
        with transaction(ctx.conn):
            user = people.ensure_user(ctx.conn, email="bench@team.example", role="member")
            people.set_membership(ctx.conn, user, people.ensure_team(ctx.conn, "bench", "Bench"))
        member = principal_for_email(ctx.conn, "bench@team.example")
        card = services.get_task(ctx, "bench-100k")
        held = features.build_holdout(card, current_release(ctx.conn, ctx.settings,
                                                            "benchdata").holdout_path)
        print(f"held-out rows: {held.rows:,} × {card.width} features; isolation: "
              f"{'yes' if isolated else 'NO (development setting)'}")
        card_fields = {"name": "bench", "version": "1", "intended_use": "benchmark",
                       "training_data": "synthetic"}
        worst = 0.0
        for name, model in _models().items():
            sandbox_times, baseline_times = [], []
            for _ in range(args.repeat):
                run_id = services.submit(ctx, member, "bench-100k", model, card_fields)
                started = time.perf_counter()
                worker.run_one(ctx.settings, ctx.conn, "bench", only_id=run_id)
                sandbox_times.append(time.perf_counter() - started)
                assert services.run_status(ctx, member, run_id)["status"] == "completed"
                seconds, p = _baseline(model, held, card)
                baseline_times.append(seconds)
            # best of the repeats: the machine is shared, so the minimum is the least noisy
            s, b = min(sandbox_times), min(baseline_times)
            goal = 1.5 * b + 0.3
            print(f"{name}: end-to-end sandbox {s:.3f} s vs in-process {b:.3f} s → "
                  f"ratio {s / b:.2f}×; goal ≤ 1.5×+0.3 s = {goal:.3f} s: "
                  f"{'met' if s <= goal else 'NOT met'}")
            worst = max(worst, _agreement(held, p))
        print(f"metrics vs scikit-learn (AUROC, AUPRC, Brier, subgroup AUROC), max |diff|: "
              f"{worst:.2e} (goal ≤ 1e-9: {'met' if worst <= 1e-9 else 'NOT met'})")
        ctx.close()
