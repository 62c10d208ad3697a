"""Staff pages: server-side rerun time (AppTest) of Home, Review queue, Datasets, Audit,
Validation runs, Grants and Teams, median and p95, each as a ratio to a trivial page's rerun
measured in the same run (goal: p95 under 150 ms).

The home holds real eunomia and wdbc releases, the demo people, three open access requests,
``--events`` audit events (default 5,000: the Audit page lists at most 5,000) and one scored
wdbc validation run awaiting review (the Validation runs page then shows its checks and full
report). Options: ``--reruns N`` (default 30), ``--events N``."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench.bench_ui import ROOT, _claims, _report, _stats, _times

STAFF = "staff@platform.example"
PURPOSE = "Estimate GI bleeding after NSAID exposure to calibrate a triage model for a product."
PAGES = [("home.py", "staff Home"), ("review_queue.py", "Review queue (3 open requests)"),
         ("datasets_admin.py", "Datasets (report sections)"),
         ("audit_log.py", "Audit (pickers, readable details)"),
         ("validation_runs.py", "Validation runs (checks + full report)"),
         ("grants.py", "Grants"), ("teams.py", "Teams and people")]


def _prepare(home: Path, events: int):
    from portal import audit
    from portal.catalog.builder import build_release
    from portal.config import Settings
    from portal.identity import principal_for_email
    from portal.services import access, demo
    from portal.services.context import Context
    from portal.store.db import transaction

    os.environ["PORTAL_HOME"] = str(home)
    settings = Settings.from_env()
    ctx = Context.open(settings)
    demo.seed_people(ctx)
    for dataset in ("eunomia", "wdbc"):
        build_release(settings, ctx.conn, dataset, actor="system")
    for email, tier in (("founder@gamma-ai.example", "row-level"),
                        ("analyst@acme-health.example", "aggregate"),
                        ("analyst@beta-bio.example", "row-level")):
        access.submit_request(ctx, principal_for_email(ctx.conn, email), "eunomia", tier,
                              PURPOSE, True)
    with transaction(ctx.conn):
        for i in range(events):
            audit.record(ctx.conn, actor=f"user{i % 40}@team{i % 7}.example",
                         team=f"team-{i % 7}", action=("query.run", "catalog.describe",
                                                       "sandbox.submit")[i % 3],
                         target="dataset:eunomia", decision=("allowed", "denied")[i % 11 == 0],
                         details={"sql_sha256": f"{i:064x}", "rows": i % 500,
                                  "limits": {"max_rows": 5000, "seconds": 30}})
    _scored_run(ctx)
    return ctx


def _scored_run(ctx) -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    from portal.catalog.releases import current_release
    from portal.identity import principal_for_email
    from portal.services import sandbox as services
    from sandbox import features

    card = services.get_task(ctx, "wdbc-malignancy")
    dev = features.build_holdout(card, current_release(ctx.conn, ctx.settings, "wdbc").dev_path)
    model = LogisticRegression(max_iter=5000).fit(dev.features, dev.labels.astype(int))
    onnx = to_onnx(model, initial_types=[(card.input.name, FloatTensorType([None, card.width]))],
                   options={id(model): {"zipmap": False}}, target_opset=17)
    member = principal_for_email(ctx.conn, "analyst@acme-health.example")
    services.submit(ctx, member, "wdbc-malignancy", onnx.SerializeToString(),
                    {"name": "bench LR", "version": "1", "intended_use": "benchmark",
                     "training_data": "wdbc dev partition"})
    services.process_queue(ctx, once=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench staff")
    parser.add_argument("--reruns", type=int, default=30)
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args(argv or [])
    from sandbox import isolation

    if not isolation.isolation_available():
        os.environ["PORTAL_SANDBOX_ALLOW_UNISOLATED"] = "true"  # development setting only
    from streamlit.testing.v1 import AppTest

    with tempfile.TemporaryDirectory(prefix="bench-staff-") as tmp:
        ctx = _prepare(Path(tmp) / "home", args.events)
        trivial = Path(tmp) / "trivial_page.py"
        trivial.write_text("import streamlit as st\nst.title('Trivial')\nst.write('hello')\n")
        base_med, base_p95 = _stats(_times(AppTest.from_file(str(trivial), default_timeout=60),
                                           args.reruns))
        print(f"trivial page rerun (baseline): median {base_med:.1f} ms, p95 {base_p95:.1f} ms")
        for page, name in PAGES:
            at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=60)
            at.user = _claims(STAFF)
            _report(f"{name} rerun", _times(at, args.reruns), base_med)
        ctx.close()


if __name__ == "__main__":
    main()
