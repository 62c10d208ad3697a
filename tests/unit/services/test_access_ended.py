"""Revocation, expiry and suspension reach queued work: the `access_ended` hook cancels queued
runs and withholds unreleased reports; the worker re-checks the grant when it claims a run and
before it stores the result; report reads and releases re-check it; time passing is enough."""

from __future__ import annotations

import json

import pytest

from portal import audit
from portal.errors import Denied
from portal.services import access as svc
from portal.services import people as people_svc
from portal.services import sandbox
from sandbox import store as runs
from sandbox import worker
from tests.factories import make_user, make_validation_run
from tests.factories_access import make_grant

TASK = "eunomia-gi-bleed"  # needs a grant for eunomia
MEMBER = "analyst@acme-health.example"


@pytest.fixture
def team(ctx):
    return {"member": make_user(ctx, MEMBER, team="acme-health"),
            "staff": make_user(ctx, "staff@platform.example", role="staff"),
            "grant": make_grant(ctx, "acme-health", "eunomia", "row-level")}


def _status(ctx, run_id):
    row = runs.get_run(ctx.conn, run_id)
    return row["status"], row["outcome"]


def _set(ctx, run_id, status, report_file=None):
    """Give the run ``status`` and, when ``report_file`` is named, an exact and a released
    report under that name (figure 0.9)."""
    ctx.conn.execute("UPDATE sandbox_runs SET status = ?, report_file = ?, released_file = ?,"
                     " primary_value = 0.9, released_primary = 0.9 WHERE id = ?",
                     (status, report_file, report_file, run_id))


def test_revocation_cancels_queued_runs_and_withholds_unreleased_reports(ctx, team):
    queued = make_validation_run(ctx, "acme-health", MEMBER, task_id=TASK)
    waiting = make_validation_run(ctx, "acme-health", MEMBER, task_id=TASK)
    _set(ctx, waiting, "awaiting_review", "r.json")
    no_grant_needed = make_validation_run(ctx, "acme-health", MEMBER, task_id="wdbc-malignancy")
    svc.revoke_grant(ctx, team["staff"], team["grant"].id, "Contract ended")
    assert _status(ctx, queued) == ("failed", "access_ended")
    assert _status(ctx, waiting)[0] == "withheld"
    assert _status(ctx, no_grant_needed) == ("queued", None)  # its task needs no eunomia grant
    cancels = audit.list_events(ctx.conn, action="sandbox.run.cancel")
    assert sorted(e.target for e in cancels) == [f"run:{queued}", f"run:{waiting}"]
    assert {e.reason for e in cancels} == {"grant_revoked"}
    with pytest.raises(Denied) as info:  # and staff cannot release the withheld one by mistake
        sandbox.release_run(ctx, team["staff"], waiting)
    assert info.value.code == "grant_revoked"
    assert audit.list_events(ctx.conn, action="sandbox.run.release")[0].decision == "denied"


def test_recorded_expiry_cancels_queued_runs(ctx, team):
    make_grant(ctx, "beta-bio", "eunomia", "aggregate", days=-1)  # active, past its expiry
    queued = make_validation_run(ctx, "beta-bio", "analyst@beta-bio.example", task_id=TASK)
    svc.expire_grants(ctx)
    assert _status(ctx, queued) == ("failed", "access_ended")
    assert audit.list_events(ctx.conn, action="sandbox.run.cancel")[0].reason == "grant_expired"


def test_suspending_a_member_cancels_only_that_members_queued_runs(ctx, team):
    colleague = "cto@acme-health.example"
    make_user(ctx, colleague, team="acme-health")
    theirs = make_validation_run(ctx, "acme-health", MEMBER, task_id=TASK)
    colleagues = make_validation_run(ctx, "acme-health", colleague, task_id=TASK)
    people_svc.suspend_member(ctx, team["staff"], MEMBER, "Left the company.")
    assert _status(ctx, theirs) == ("failed", "access_ended")
    assert _status(ctx, colleagues) == ("queued", None)


def test_suspending_a_team_cancels_all_its_queued_runs(ctx, team):
    runs_of_team = [make_validation_run(ctx, "acme-health", MEMBER, task_id=task)
                    for task in (TASK, "wdbc-malignancy")]
    people_svc.suspend_team(ctx, team["staff"], "acme-health", "Contract paused")
    assert [_status(ctx, r) for r in runs_of_team] == [("failed", "access_ended")] * 2


def test_worker_refuses_a_run_whose_grant_expired_by_time_alone(ctx, team):
    make_grant(ctx, "beta-bio", "eunomia", "aggregate", days=-1)  # nobody recorded the expiry
    queued = make_validation_run(ctx, "beta-bio", "analyst@beta-bio.example", task_id=TASK)
    assert worker.run_one(ctx.settings, ctx.conn, "w1", only_id=queued) == queued
    assert _status(ctx, queued) == ("failed", "access_ended")
    finished = audit.list_events(ctx.conn, action="sandbox.run.finish")[0]
    assert (finished.decision, finished.reason) == ("failed", "access_ended")


def test_worker_stores_nothing_when_access_ends_while_the_run_executes(ctx, team):
    queued = make_validation_run(ctx, "acme-health", MEMBER, task_id=TASK)

    def revoke_meanwhile(run_id):
        svc.revoke_grant(ctx, team["staff"], team["grant"].id, "Contract ended")

    worker.run_one(ctx.settings, ctx.conn, "w1", before_execute=revoke_meanwhile,
                   only_id=queued)
    row = runs.get_run(ctx.conn, queued)
    assert (row["status"], row["outcome"], row["report_file"]) == ("failed", "access_ended",
                                                                   None)


def test_report_reads_recheck_the_grant(ctx, team):
    run_id = make_validation_run(ctx, "acme-health", MEMBER, task_id=TASK)
    (ctx.settings.reports_dir / "r.json").write_text(json.dumps({"primary": {"value": 0.9}}))
    _set(ctx, run_id, "released", "r.json")
    assert sandbox.report(ctx, team["member"], run_id) == {"primary": {"value": 0.9}}
    assert sandbox.run_status(ctx, team["member"], run_id)["primary_value"] == 0.9
    svc.revoke_grant(ctx, team["staff"], team["grant"].id, "Contract ended")
    with pytest.raises(Denied) as info:
        sandbox.report(ctx, team["member"], run_id)
    assert info.value.code == "grant_revoked"
    status = sandbox.run_status(ctx, team["member"], run_id)
    assert status["primary_value"] is None and status["report_available"] is False
    assert sandbox.report(ctx, team["staff"], run_id)["primary"]["value"] == 0.9


def test_release_is_refused_once_the_grant_expired_by_time(ctx, team):
    make_grant(ctx, "beta-bio", "eunomia", "aggregate", days=-1)
    run_id = make_validation_run(ctx, "beta-bio", "analyst@beta-bio.example", task_id=TASK)
    _set(ctx, run_id, "awaiting_review", "r.json")
    with pytest.raises(Denied) as info:
        sandbox.release_run(ctx, team["staff"], run_id)
    assert info.value.code == "grant_expired"
    assert _status(ctx, run_id)[0] == "awaiting_review"
