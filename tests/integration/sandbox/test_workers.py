"""Workers, on both store engines: atomic claims across concurrent workers, and runs left by a
dead worker are retried or failed, never stuck."""

from __future__ import annotations

import threading

import pytest

from portal import audit
from portal.services import sandbox as services
from portal.store.db import connect, transaction
from sandbox import store, worker
from tests.integration.sandbox.helpers import need_isolation, people, run_queue, wdbc_model
from tests.store_engines import ENGINES
from tests.unit.sandbox.factories import MODEL_CARD


@pytest.fixture(params=ENGINES)
def store_engine(request) -> str:
    return request.param


def _queue_runs(ctx, count: int) -> list[int]:
    card = services.get_task(ctx, "wdbc-malignancy")
    with transaction(ctx.conn):
        model_id = store.insert_model(ctx.conn, sha256="0" * 64, size_bytes=1, team="acme-health",
                                      uploaded_by="t", name="m", model_version="1",
                                      intended_use="t", training_data="t")
        return [store.insert_run(ctx.conn, kind="validation", card=card, team="acme-health",
                                 requested_by="t", model_id=model_id) for _ in range(count)]


def test_concurrent_workers_never_claim_the_same_run(ctx):
    queued = _queue_runs(ctx, 40)
    claimed: dict[str, list[int]] = {}
    errors = []

    def claimer(name: str) -> None:
        conn = connect(ctx.settings.store_target, ctx.settings)
        mine = claimed.setdefault(name, [])
        try:
            while True:
                run_id, _ = store.claim(conn, name, 300)
                if run_id is None:
                    return
                mine.append(run_id)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    everything = [r for runs in claimed.values() for r in runs]
    assert sorted(everything) == sorted(queued)  # each exactly once
    owners = {r["id"]: r["lease_owner"] for r in ctx.conn.execute(
        "SELECT id, lease_owner FROM sandbox_runs")}
    for name, runs in claimed.items():
        assert all(owners[r] == name for r in runs)


def test_run_of_a_dead_worker_is_requeued_then_failed_after_its_tries(ctx):
    (run_id,) = _queue_runs(ctx, 1)
    assert store.claim(ctx.conn, "dead-1", 300)[0] == run_id
    ctx.conn.execute("UPDATE sandbox_runs SET lease_expires_at = 0 WHERE id = ?", (run_id,))
    assert store.claim(ctx.conn, "dead-2", 300)[0] == run_id  # requeued and claimed again
    ctx.conn.execute("UPDATE sandbox_runs SET lease_expires_at = 0 WHERE id = ?", (run_id,))
    claimed, failed = store.claim(ctx.conn, "alive", 300)
    assert claimed is None and failed == [run_id]
    row = store.get_run(ctx.conn, run_id)
    assert row["status"] == "failed" and row["outcome"] == "internal_error"


def test_worker_that_lost_its_lease_cannot_record_a_result(ctx):
    from sandbox.runner import RunResult

    (run_id,) = _queue_runs(ctx, 1)
    store.claim(ctx.conn, "slow", 300)
    ctx.conn.execute("UPDATE sandbox_runs SET lease_expires_at = 0 WHERE id = ?", (run_id,))
    store.claim(ctx.conn, "fresh", 300)
    assert worker.finish(ctx.conn, run_id, "slow", RunResult("ok", "late"), None) is None
    assert store.get_run(ctx.conn, run_id)["lease_owner"] == "fresh"


def test_run_left_by_a_dead_worker_completes_on_the_next_worker(released_ctx):
    need_isolation()
    ctx = released_ctx
    member, _, _ = people(ctx)
    run_id = services.submit(ctx, member, "wdbc-malignancy", wdbc_model(ctx), MODEL_CARD)
    store.claim(ctx.conn, "worker-that-died", 300)
    ctx.conn.execute("UPDATE sandbox_runs SET lease_expires_at = 0 WHERE id = ?", (run_id,))
    assert run_queue(ctx) == 1
    status = services.run_status(ctx, member, run_id)
    assert status["status"] == "awaiting_review"
    assert store.get_run(ctx.conn, run_id)["tries"] == 2


def test_platform_fault_during_a_run_is_recorded_as_internal_error(released_ctx):
    need_isolation()
    ctx = released_ctx
    member, _, _ = people(ctx)
    run_id = services.submit(ctx, member, "wdbc-malignancy", wdbc_model(ctx), MODEL_CARD)
    sha = services.run_status(ctx, member, run_id)["model_sha256"]
    from sandbox.runner import model_path

    model_path(ctx.settings, sha).write_bytes(b"corrupted on disk")
    run_queue(ctx)
    status = services.run_status(ctx, member, run_id)
    assert status["status"] == "failed" and status["outcome"] == "internal_error"
    assert "staff" in status["message"] and "corrupt" not in status["message"]
    event = audit.list_events(ctx.conn, action="sandbox.run.finish")[0]
    assert event.reason == "internal_error"


@pytest.mark.parametrize("kind", ["validation", "dry_run"])
def test_worker_with_isolation_unavailable_refuses_to_run(released_ctx, monkeypatch, tmp_path,
                                                         kind):
    from portal.isolation import launcher

    ctx = released_ctx
    member, _, _ = people(ctx)
    model = wdbc_model(ctx)
    monkeypatch.setitem(launcher.TOOLS, "bwrap", str(tmp_path / "bwrap-not-installed"))
    if kind == "dry_run":
        status = services.dry_run(ctx, member, "wdbc-malignancy", model, MODEL_CARD)
    else:
        run_id = services.submit(ctx, member, "wdbc-malignancy", model, MODEL_CARD)
        worker.run_one(ctx.settings, ctx.conn, "lost-isolation")  # e.g. lost it mid-life
        status = services.run_status(ctx, member, run_id)
    assert status["status"] == "failed" and status["outcome"] == "isolation_unavailable"
    # a platform refusal does not use the team's valid-run quota
    assert store.usage(ctx.conn, member.team, "wdbc-malignancy")["valid_runs"] == 0


def test_worker_refuses_to_start_without_isolation(ctx, monkeypatch, tmp_path):
    from portal.errors import InternalError
    from portal.isolation import launcher

    monkeypatch.setitem(launcher.TOOLS, "bwrap", str(tmp_path / "bwrap-not-installed"))
    (run_id,) = _queue_runs(ctx, 1)
    with pytest.raises(InternalError) as exc:
        worker.work(ctx.settings, once=True)
    assert exc.value.code == "isolation_unavailable"
    assert store.get_run(ctx.conn, run_id)["status"] == "queued"  # left for a capable worker


def test_worker_refuses_to_start_when_the_home_cannot_be_hidden():
    """A home that holds the interpreter would be visible to every scorer: refuse (the check
    comes before the worker opens anything in that home)."""
    import sys
    from pathlib import Path

    from portal.config import Settings
    from portal.errors import InternalError

    need_isolation()
    settings = Settings.from_env({"PORTAL_HOME": str(Path(sys.prefix))})
    with pytest.raises(InternalError) as exc:
        worker.work(settings, once=True)
    assert exc.value.code == "isolation_unavailable"


def test_worker_start_sweeps_job_folders_whose_worker_is_gone(ctx):
    import os
    import subprocess

    from portal.isolation import jobs

    need_isolation()
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = jobs.job_base() / f"job-{gone.pid}-0badc0de"
    stale.mkdir()
    (stale / "features.f32").write_bytes(b"left behind")
    live = jobs.new_job_folder(os.getuid())  # ours: this process still runs
    worker.work(ctx.settings, once=True)
    assert not stale.exists() and live.is_dir()
    live.rmdir()
