"""Two staff approving the same request at the same moment, in separate processes and in
separate threads, on the real SQLite file: exactly one grant is created."""

import multiprocessing
import threading
from dataclasses import replace
from pathlib import Path

from portal.config import Settings
from portal.errors import UserError
from portal.identity import principal_for_email
from portal.services import access as svc
from portal.services.context import Context
from tests.factories import make_user
from tests.factories_access import policy_ctx, submit


def _approve_in_process(home: str, policies: str, email: str, request_id: int, barrier,
                        results) -> None:
    settings = replace(Settings.from_env({"PORTAL_HOME": home}), policies_dir=Path(policies))
    ctx = Context.open(settings)
    staff = principal_for_email(ctx.conn, email)
    barrier.wait(timeout=60)
    try:
        svc.approve_request(ctx, staff, request_id, days=30)
        results.put("approved")
    except UserError as exc:
        results.put(exc.code)
    finally:
        ctx.close()


def _setup(ctx, tmp_path, approvals=1):
    actx = policy_ctx(ctx, tmp_path / "policies", row_level_approvals=approvals)
    member = make_user(actx, "a@acme.example", team="acme-health")
    make_user(actx, "staff@platform.example", role="staff")
    make_user(actx, "reviewer@platform.example", role="staff")
    return actx, submit(actx, member)["id"]


def _grant_count(actx) -> int:
    return actx.conn.execute("SELECT count(*) FROM grants").fetchone()[0]


def test_two_processes_approving_at_once_create_one_grant(ctx, tmp_path):
    actx, request_id = _setup(ctx, tmp_path)
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(2), spawn.Queue()
    workers = [spawn.Process(target=_approve_in_process,
                             args=(str(actx.settings.home), str(actx.settings.policies_dir),
                                   email, request_id, barrier, results))
               for email in ("staff@platform.example", "reviewer@platform.example")]
    for worker in workers:
        worker.start()
    outcomes = sorted(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    assert outcomes == ["approved", "invalid_transition"]
    assert _grant_count(actx) == 1


def _race_in_threads(actx, request_id):
    barrier, outcomes = threading.Barrier(2), []

    def approve(email):
        ctx = Context.open(actx.settings)
        staff = principal_for_email(ctx.conn, email)
        barrier.wait(timeout=60)
        try:
            outcomes.append(svc.approve_request(ctx, staff, request_id, days=30)["status"])
        except UserError as exc:
            outcomes.append(exc.code)
        finally:
            ctx.close()

    threads = [threading.Thread(target=approve, args=(e,))
               for e in ("staff@platform.example", "reviewer@platform.example")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(outcomes)


def test_two_threads_approving_at_once_create_one_grant(ctx, tmp_path):
    actx, request_id = _setup(ctx, tmp_path)
    assert _race_in_threads(actx, request_id) == ["approved", "invalid_transition"]
    assert _grant_count(actx) == 1


def test_two_staff_approving_a_two_approval_request_at_once_approve_it_once(ctx, tmp_path):
    actx, request_id = _setup(ctx, tmp_path, approvals=2)
    assert _race_in_threads(actx, request_id) == ["approved", "awaiting_second_approval"]
    assert _grant_count(actx) == 1
