"""Validation pages: server-side rerun time of a run's page (a released full report with its
plots) and of the leaderboard (a member's and staff's view, with paired DeLong comparisons),
median and p95, each as a ratio to a trivial page's rerun measured in the same run (goal: p95
under 150 ms). A real wdbc release, a real model scored in isolation, the platform reference.

Options: ``--reruns N`` (default 40)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.bench_ui import _claims, _report, _stats, _times

ROOT = Path(__file__).resolve().parent.parent
ANALYST = "analyst@acme-health.example"
STAFF = "staff@platform.example"
TASK = "wdbc-malignancy"


def _prepare(home: Path) -> int:
    from portal.catalog.builder import build_release
    from portal.catalog.releases import current_release
    from portal.config import Settings
    from portal.identity import principal_for_email
    from portal.services import demo, leaderboard, sandbox
    from portal.services.context import Context
    from sandbox import features, reference

    os.environ["PORTAL_HOME"] = str(home)
    settings = Settings.from_env()
    ctx = Context.open(settings)
    try:
        demo.seed_people(ctx)
        build_release(settings, ctx.conn, "wdbc", actor="system")
        card = sandbox.get_task(ctx, TASK)
        dev = features.build_dev(card, current_release(ctx.conn, settings, "wdbc"))
        member = principal_for_email(ctx.conn, ANALYST)
        staff = principal_for_email(ctx.conn, STAFF)
        run_id = sandbox.submit(ctx, member, TASK, reference.build(dev.features, dev.labels),
                                {"name": "Bench LR", "version": "1", "intended_use": "bench",
                                 "training_data": "wdbc dev"}, final=True)
        leaderboard.seed_reference_models(ctx)
        sandbox.process_queue(ctx, once=True)
        sandbox.release_run(ctx, staff, run_id)
        return run_id
    finally:
        ctx.close()


def main(argv: list[str]) -> None:
    from streamlit.testing.v1 import AppTest

    reruns = int(argv[argv.index("--reruns") + 1]) if "--reruns" in argv else 40
    with tempfile.TemporaryDirectory(prefix="bench-valux-") as tmp:
        folder = Path(tmp)
        run_id = _prepare(folder / "home")
        trivial = folder / "trivial_page.py"
        trivial.write_text("import streamlit as st\nst.title('Trivial')\nst.write('hello')\n")
        base_med, base_p95 = _stats(_times(AppTest.from_file(str(trivial), default_timeout=60),
                                           reruns))
        print(f"trivial page rerun (baseline): median {base_med:.1f} ms, p95 {base_p95:.1f} ms")

        page = AppTest.from_file(str(ROOT / "pages" / "validation_run.py"), default_timeout=60)
        page.user = _claims(ANALYST)
        page.query_params["id"] = str(run_id)
        _report("run page rerun (member, released full report, 4 plots)",
                _times(page, reruns), base_med)
        page = AppTest.from_file(str(ROOT / "pages" / "validation_run.py"), default_timeout=60)
        page.user = _claims(STAFF)
        page.query_params["id"] = str(run_id)
        _report("run page rerun (staff, exact report)", _times(page, reruns), base_med)

        for who, email in (("member", ANALYST), ("staff", STAFF)):
            board = AppTest.from_file(str(ROOT / "pages" / "leaderboard.py"), default_timeout=60)
            board.user = _claims(email)
            board.run()
            board.selectbox(key="lb_task").select(TASK)
            _report(f"leaderboard rerun ({who}, paired DeLong vs the leader)",
                    _times(board, reruns), base_med)
