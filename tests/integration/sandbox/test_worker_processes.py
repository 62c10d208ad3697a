"""A validation worker killed mid-run, with real worker processes, on both store engines: the
run is claimed again once its lease runs out and is finished exactly once."""

from __future__ import annotations

import pytest

from portal import audit
from portal.services import sandbox as services
from portal.store.db import connect
from sandbox import store
from tests.integration.processes import kill_tree, portal_process, stop, wait_until
from tests.integration.sandbox.helpers import people, with_fast_tasks
from tests.store_engines import ENGINES
from tests.unit.sandbox import factories
from tests.unit.sandbox.factories import MODEL_CARD

TASK = "wdbc-malignancy"


@pytest.fixture(params=ENGINES)
def store_engine(request) -> str:
    return request.param


def _worker_env(ctx) -> dict[str, str]:
    env = {"PORTAL_HOME": str(ctx.settings.home), "PORTAL_TASKS_DIR": str(ctx.settings.tasks_dir),
           "PORTAL_WORKER_LEASE_SECONDS": "2", "PORTAL_WORKER_SWEEP_SECONDS": "1",
           "PORTAL_REVALIDATE_CRON": "", "PORTAL_SANDBOX_ALLOW_UNISOLATED": "1"}
    if ctx.settings.database_url:
        env["PORTAL_DATABASE_URL"] = ctx.settings.database_url
    return env


@pytest.mark.slow
def test_worker_killed_mid_run_leaves_the_run_to_another_worker_which_finishes_it_once(
        released_ctx, tmp_path):
    ctx = with_fast_tasks(released_ctx, wall_seconds=3)
    member, _, _ = people(ctx)
    width = services.get_task(ctx, TASK).width
    run_id = services.submit(ctx, member, TASK, factories.endless_loop_model(width), MODEL_CARD)
    env = _worker_env(ctx)
    first = portal_process(["worker", "--name", "worker-a"], env, tmp_path / "a.log")
    watch = connect(ctx.settings.store_target, ctx.settings)
    try:
        wait_until(lambda: store.get_run(watch, run_id)["lease_owner"] == "worker-a", 120,
                   "worker-a to claim the run")
        kill_tree(first)  # mid-run: the model loops until the 3 s wall clock stops it
        assert store.get_run(watch, run_id)["status"] == "running"
        second = portal_process(["worker", "--name", "worker-b"], env, tmp_path / "b.log")
        try:
            wait_until(lambda: store.get_run(watch, run_id)["status"] not in
                               ("queued", "running"), 120, "the run to finish")
        finally:
            stop(second)
        run = store.get_run(watch, run_id)
        finishes = audit.list_events(watch, action="sandbox.run.finish",
                                     target_prefix=f"run:{run_id}")
        assert [e.actor for e in finishes] == ["worker:worker-b"]
        assert run["tries"] == 2 and run["lease_owner"] is None
        assert (run["status"], run["outcome"]) == ("failed", "timed_out")
        assert audit.verify(watch).ok
    finally:
        watch.close()
        stop(first)
