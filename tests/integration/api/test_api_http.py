"""The API over real HTTP: submit → status → real validation worker → report, dry runs, governed
SQL with the CLI's JSON contract, budgets, and the `portal api` command itself."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from portal import audit
from portal.cli import main as cli_main
from portal.devserver import stop, wait_for_http
from portal.services import sandbox as sandbox_services
from tests.factories_access import make_grant
from tests.integration.api.helpers import make_api_token, multipart
from tests.integration.sandbox.helpers import MEMBER, need_isolation, run_queue, wdbc_model

TASK = "wdbc-malignancy"


def test_submit_then_status_then_worker_then_released_report(released_ctx, people, live_api):
    need_isolation()
    member, _, staff = people
    token = make_api_token(released_ctx, member)
    with live_api.client(token) as http:
        submitted = http.post("/api/v1/runs", **multipart(TASK, wdbc_model(released_ctx),
                                                          final="true"))
        assert submitted.status_code == 201, submitted.text
        run = submitted.json()
        assert (run["kind"], run["task"], run["status"]) == ("validation", TASK, "queued")
        assert http.get(f"/api/v1/runs/{run['id']}").json()["status"] == "queued"

        assert run_queue(released_ctx) == 1  # the real validation worker
        status = http.get(f"/api/v1/runs/{run['id']}").json()
        assert status["status"] == "awaiting_review" and status["primary_value"] is None
        held = http.get(f"/api/v1/runs/{run['id']}/report")
        assert held.status_code == 403 and held.json()["error"]["code"] == "report_not_released"

        sandbox_services.release_run(released_ctx, staff, run["id"])
        report = http.get(f"/api/v1/runs/{run['id']}/report")
        assert report.status_code == 200
        listed = http.get("/api/v1/runs").json()
    document = report.json()
    assert document == json.loads(json.dumps(
        sandbox_services.released_report(released_ctx, member, run["id"])))
    assert document["view"] == "released" and document["final"] is True
    assert document["metrics"]["overall"]["auroc"]["value"] > 0.9
    assert [r["id"] for r in listed] == [run["id"]]
    submits = audit.list_events(released_ctx.conn, action="sandbox.submit")
    assert [(e.actor, e.decision, e.target) for e in submits] == \
        [(MEMBER, "allowed", f"run:{run['id']}")]
    views = audit.list_events(released_ctx.conn, action="sandbox.report.view")
    assert [e.decision for e in views][-2:] == ["allowed", "denied"]


def test_dry_run_returns_the_finished_run(released_ctx, people, live_api):
    need_isolation()
    member, _, _ = people
    token = make_api_token(released_ctx, member, actions=("sandbox:submit",))
    with live_api.client(token) as http:
        response = http.post("/api/v1/runs", **multipart(TASK, wdbc_model(released_ctx),
                                                         dry_run=True))
    assert response.status_code == 201, response.text
    run = response.json()
    assert (run["kind"], run["status"], run["outcome"]) == ("dry_run", "completed", "ok")
    [event] = audit.list_events(released_ctx.conn, action="sandbox.dry_run")
    assert (event.actor, event.decision) == (MEMBER, "allowed")


def test_query_has_the_same_json_contract_as_the_cli(released_ctx, people, live_api,
                                                     capsys):
    member, _, _ = people
    make_grant(released_ctx, "acme-health", "eunomia", "aggregate")
    token = make_api_token(released_ctx, member, actions=("query:run",))
    sql = ("SELECT gender_concept_id, count(*) AS persons FROM person "
           "GROUP BY gender_concept_id ORDER BY gender_concept_id")
    with live_api.client(token) as http:
        response = http.post("/api/v1/query", json={"dataset": "eunomia", "sql": sql})
    assert response.status_code == 200, response.text
    over_http = response.json()
    env = {"PORTAL_HOME": str(released_ctx.settings.home), "PORTAL_ENV": "development"}
    assert cli_main(["query", "--user", MEMBER, "--dataset", "eunomia", "--sql", sql,
                     "--format", "json"], env) == 0
    from_cli = json.loads(capsys.readouterr().out)
    assert set(over_http) == set(from_cli)
    for key in ("columns", "rows", "row_count", "truncated", "suppressed", "tier",
                "row_suppressed", "cell_suppressed"):
        assert over_http[key] == from_cli[key], key
    assert over_http["row_count"] >= 2
    runs = audit.list_events(released_ctx.conn, action="query.run", actor=MEMBER)
    assert [e.decision for e in runs] == ["allowed", "allowed"]


def test_non_finite_values_arrive_as_json_null(released_ctx, people, live_api):
    member, _, _ = people
    make_grant(released_ctx, "acme-health", "eunomia", "row-level")
    token = make_api_token(released_ctx, member, actions=("query:run",))
    with live_api.client(token) as http:
        response = http.post("/api/v1/query", json={
            "dataset": "eunomia", "sql": "SELECT 'nan'::DOUBLE AS x, 'inf'::DOUBLE AS y, 1.5 AS z"})
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == [[None, None, 1.5]]


def test_budget_counts_queries_and_validation_attempts(released_ctx, people, live_api):
    member, _, _ = people
    make_grant(released_ctx, "acme-health", "eunomia", "row-level")
    token = make_api_token(released_ctx, member)
    with live_api.client(token) as http:
        http.post("/api/v1/query", json={"dataset": "eunomia", "sql": "SELECT 1 AS one"})
        http.post("/api/v1/runs", **multipart(TASK, b"not a model"))
        budget = http.get("/api/v1/budget").json()
    by_dataset = {d["dataset"]: d for d in budget["datasets"]}
    eunomia = by_dataset["eunomia"]
    assert eunomia["tier"] == "row-level" and eunomia["refusal"] is None
    minute = {w["window"]: w for w in eunomia["queries"]}["minute"]
    assert minute["used"] == 1 and minute["remaining"] == minute["limit"] - 1
    assert "privacy" in eunomia
    assert by_dataset["wdbc"]["refusal"]["code"] == "no_grant"
    wdbc_task = {t["task"]: t for t in budget["tasks"]}[TASK]
    assert (wdbc_task["attempts_used"], wdbc_task["valid_runs_used"]) == (1, 0)


def test_budget_reports_the_dp_budget_and_query_results_their_half_widths(released_ctx, people,
                                                                          live_api):
    member, _, _ = people
    make_grant(released_ctx, "acme-health", "eunomia", "aggregate")
    token = make_api_token(released_ctx, member)
    with live_api.client(token) as http:
        before = http.get("/api/v1/budget").json()
        answer = http.post("/api/v1/query", json={
            "dataset": "eunomia", "sql": "SELECT count(DISTINCT person_id) FROM person"}).json()
        after = http.get("/api/v1/budget").json()
    privacy = {d["dataset"]: d for d in before["datasets"]}["eunomia"]["privacy"]
    assert (privacy["spent_rho"], privacy["queries_left"]) == (0.0, 10)
    assert answer["half_widths"] == [[2]] and answer["privacy"]["cost_rho"] == 0.5
    privacy = {d["dataset"]: d for d in after["datasets"]}["eunomia"]["privacy"]
    assert (privacy["spent_rho"], privacy["queries_left"]) == (0.5, 9)
    assert privacy["budget_rho"] == 5.0


def test_tasks_token_and_openapi_document(released_ctx, people, live_api):
    member, _, _ = people
    token = make_api_token(released_ctx, member, datasets=("wdbc",),
                           actions=("sandbox:read",))
    with live_api.client(token) as http:
        tasks = http.get("/api/v1/tasks").json()
        me = http.get("/api/v1/token").json()
        document = http.get("/api/v1/openapi.json").json()
    assert [t["id"] for t in tasks] == [TASK]
    assert (me["owner"], me["team"], me["datasets"], me["actions"]) == \
        (MEMBER, "acme-health", ["wdbc"], ["sandbox:read"])
    assert token not in json.dumps(me)
    assert {"/api/v1/runs", "/api/v1/runs/{run_id}", "/api/v1/runs/{run_id}/report",
            "/api/v1/query", "/api/v1/budget"} <= set(document["paths"])
    assert document["components"]["securitySchemes"]["personal_access_token"]["scheme"] == \
        "bearer"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_portal_api_command_serves_the_api(released_ctx, people):
    member, _, _ = people
    token = make_api_token(released_ctx, member)
    port = _free_port()
    env = {**os.environ, "PORTAL_HOME": str(released_ctx.settings.home)}
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from portal.cli import main; "
                             f"sys.exit(main(['api', '--port', '{port}']))"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/health", 60, proc)
        import httpx

        response = httpx.get(f"http://127.0.0.1:{port}/api/v1/token",
                             headers={"Authorization": f"Bearer {token}"})
    finally:
        stop(proc)
    assert response.status_code == 200 and response.json()["owner"] == MEMBER
