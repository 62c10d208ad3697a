"""Several machines on one box: two portal service processes and three validation workers, each
with its own PORTAL_HOME, sharing one PostgreSQL store, one storage root and one secrets folder.

- 36 submissions from two teams (quota: 15 valid runs per team per day) through both services;
  one worker is killed mid-run. Every accepted run finishes exactly once, each team gets exactly
  its quota, and the audit chain verifies.
- 8 clients query through the two services (4 each) for two users whose daily budget is 12
  queries: neither user ever gets more than 12 answers, whatever server they go through.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter

import pytest

from portal import audit
from portal.catalog.builder import build_release
from portal.config import Settings
from portal.services.context import Context
from portal.store.db import connect
from tests.factories import make_user
from tests.factories_access import make_grant
from tests.integration.processes import (
    ROOT,
    kill_tree,
    kill_while,
    portal_process,
    stop,
    wait_until,
)
from tests.integration.sandbox.helpers import MEMBER, OTHER_MEMBER, wdbc_model

TASK = "wdbc-malignancy"
QUOTA, SUBMISSIONS_PER_TEAM = 15, 18
DAILY_BUDGET, QUERIES_PER_USER = 12, 24


@pytest.fixture(params=["postgresql"])  # several machines need the shared server store
def store_engine(request) -> str:
    return request.param


def _shared(tmp_path, settings) -> dict[str, str]:
    """Environment shared by every machine: store, storage, secrets, policies, task cards."""
    policies, tasks = tmp_path / "policies", tmp_path / "tasks"
    shutil.copytree(settings.policies_dir, policies)
    shutil.copytree(settings.tasks_dir, tasks)
    text = (policies / "wdbc.yaml").read_text()
    (policies / "wdbc.yaml").write_text(re.sub(r"per_day: \d+", f"per_day: {DAILY_BUDGET}",
                                               text))
    for card in tasks.glob("*.yaml"):
        text = re.sub(r"valid_runs_per_day: \d+", f"valid_runs_per_day: {QUOTA}",
                      card.read_text())
        text = re.sub(r"attempts_per_day: \d+", "attempts_per_day: 100", text)
        card.write_text(re.sub(r"wall_seconds: \d+", "wall_seconds: 20", text))
    return {"PORTAL_DATABASE_URL": settings.database_url,
            "PORTAL_STORAGE_ROOT": str(tmp_path / "shared"),
            "PORTAL_SECRETS_DIR": str(tmp_path / "secrets"),
            "PORTAL_POLICIES_DIR": str(policies), "PORTAL_TASKS_DIR": str(tasks),
            "PORTAL_ENV": "development", "PORTAL_SANDBOX_ALLOW_UNISOLATED": "1",
            "PORTAL_WORKER_LEASE_SECONDS": "3", "PORTAL_WORKER_SWEEP_SECONDS": "1",
            "PORTAL_REVALIDATE_CRON": "", "PORTAL_QUERY_WORKERS": "1"}


class Service:
    """One portal service process (a 'server' with its own home)."""

    def __init__(self, env: dict[str, str], home, log):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.multinode.service"], cwd=ROOT,
            env={**os.environ, **env, "PORTAL_HOME": str(home)},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(log, "ab"), text=True)  # noqa: SIM115 - kept by the child
        self.replies: dict[int, dict] = {}
        self._lock = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            reply = json.loads(line)
            with self._lock:
                self.replies[reply["id"]] = reply
                self._lock.notify_all()

    def send(self, request_id: int, **request) -> None:
        self.proc.stdin.write(json.dumps({"id": request_id, **request}) + "\n")
        self.proc.stdin.flush()

    def wait(self, request_id: int, timeout: float = 300) -> dict:
        with self._lock:
            if not self._lock.wait_for(lambda: request_id in self.replies, timeout):
                raise AssertionError(f"no answer to request {request_id}")
            return self.replies[request_id]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                kill_tree(self.proc)


@pytest.fixture
def cluster(settings, tmp_path):
    env = _shared(tmp_path, settings)
    admin = Settings.from_env({**env, "PORTAL_HOME": str(tmp_path / "admin-home")})
    ctx = Context.open(admin)
    build_release(admin, ctx.conn, "wdbc", actor="system")
    make_user(ctx, MEMBER, team="acme-health")
    make_user(ctx, OTHER_MEMBER, team="beta-bio")
    for team in ("acme-health", "beta-bio"):
        make_grant(ctx, team, "wdbc", "row-level")
    model = tmp_path / "model.onnx"
    model.write_bytes(wdbc_model(ctx))
    services = [Service(env, tmp_path / f"server-{i}", tmp_path / f"server-{i}.log")
                for i in (1, 2)]
    yield ctx, env, services, model
    for service in services:
        service.close()
    ctx.close()


@pytest.mark.slow
def test_three_workers_two_servers_one_killed_worker_every_run_finishes_once(cluster, tmp_path):
    ctx, env, servers, model = cluster
    workers = [portal_process(["worker", "--name", f"machine-{i}"],
                              {**env, "PORTAL_HOME": str(tmp_path / f"worker-{i}")},
                              tmp_path / f"worker-{i}.log") for i in (1, 2, 3)]
    try:
        for n in range(SUBMISSIONS_PER_TEAM * 2):
            servers[n % 2].send(n, op="submit", email=(MEMBER, OTHER_MEMBER)[n // 2 % 2],
                                task=TASK, model=str(model))
        replies = [servers[n % 2].wait(n) for n in range(SUBMISSIONS_PER_TEAM * 2)]
        watch = connect(ctx.settings.store_target, ctx.settings)
        kill_while(workers[0],  # one machine dies mid-run
                   lambda: watch.execute("SELECT 1 FROM sandbox_runs WHERE status = 'running'"
                                         " AND lease_owner = 'machine-1'").fetchone(), 120,
                   "machine-1 to be running a validation")
        wait_until(lambda: watch.execute("SELECT count(*) FROM sandbox_runs WHERE status IN"
                                         " ('queued', 'running')").fetchone()[0] == 0, 600,
                   "every run to finish")
    finally:
        for worker in workers:
            stop(worker)
    accepted = Counter(r["ok"] for r in replies)
    assert accepted == {True: 2 * QUOTA, False: 2 * (SUBMISSIONS_PER_TEAM - QUOTA)}, replies
    assert {r["code"] for r in replies if not r["ok"]} == {"valid_run_quota_exceeded"}
    runs = watch.execute("SELECT id, team, status, outcome, tries FROM sandbox_runs").fetchall()
    assert Counter(r["team"] for r in runs) == {"acme-health": QUOTA, "beta-bio": QUOTA}
    assert {(r["status"], r["outcome"]) for r in runs} == {("awaiting_review", "ok")}
    finished = Counter(e.target for e in audit.list_events(watch, action="sandbox.run.finish",
                                                           limit=10_000))
    assert finished == {f"run:{r['id']}": 1 for r in runs}  # each exactly once
    assert any(r["tries"] == 2 for r in runs)  # the killed machine's run was claimed again
    assert {e.actor for e in audit.list_events(watch, action="sandbox.run.finish")} <= {
        "worker:machine-1", "worker:machine-2", "worker:machine-3"}
    assert audit.verify(watch).ok
    watch.close()


@pytest.mark.slow
def test_eight_clients_through_two_servers_never_exceed_a_users_budget(cluster):
    ctx, _, servers, _ = cluster
    requests = []
    for n in range(QUERIES_PER_USER * 2):
        email = (MEMBER, OTHER_MEMBER)[n % 2]
        requests.append((servers[n // 2 % 2], n, email))

    def client(mine) -> None:
        for server, n, email in mine:
            server.send(n, op="query", email=email, dataset="wdbc",
                        sql="SELECT count(*) AS n FROM cases")
            server.wait(n)

    clients = [threading.Thread(target=client, args=(requests[i::8],)) for i in range(8)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(600)
    answers = {email: Counter() for email in (MEMBER, OTHER_MEMBER)}
    for server, n, email in requests:
        reply = server.wait(n)
        answers[email]["allowed" if reply["ok"] else reply["code"]] += 1
    for email in (MEMBER, OTHER_MEMBER):
        assert answers[email] == {"allowed": DAILY_BUDGET,
                                  "query_budget_exceeded": QUERIES_PER_USER - DAILY_BUDGET}
    events = audit.list_events(ctx.conn, action="query.run", limit=10_000)
    assert Counter(e.decision for e in events) == {"allowed": 2 * DAILY_BUDGET,
                                                   "denied": 2 * (QUERIES_PER_USER - DAILY_BUDGET)}
    assert audit.verify(ctx.conn).ok
