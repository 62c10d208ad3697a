"""Hostile requests to the HTTP API, over real HTTP: no, malformed, forged, expired, revoked,
wrong-scope and other-team tokens, tokens of suspended people, oversized bodies, garbage and
pickled models, SQL the tier refuses. Each asserts the status and stable code, that nothing
leaks (paths, stack traces, token text, another team's data) and that it was audited."""

from __future__ import annotations

import dataclasses
import pickle
import socket

import pytest

from portal import audit
from portal.services import people as people_services
from portal.services import sandbox as sandbox_services
from portal.services import tokens
from portal.store.db import transaction
from tests.factories_access import make_grant
from tests.integration.api.helpers import LiveApi, assert_refusal, make_api_token, multipart
from tests.integration.sandbox import helpers as sandbox_helpers
from tests.integration.sandbox.helpers import MEMBER, OTHER_MEMBER, wdbc_model
from tests.unit.sandbox import factories

TASK = "wdbc-malignancy"
ENDPOINTS = [("GET", "/api/v1/tasks"), ("POST", "/api/v1/runs"), ("GET", "/api/v1/runs"),
             ("GET", "/api/v1/runs/1"), ("GET", "/api/v1/runs/1/report"),
             ("POST", "/api/v1/query"), ("GET", "/api/v1/budget"), ("GET", "/api/v1/token")]


@pytest.fixture
def who(released_ctx):
    member, other, staff = sandbox_helpers.people(released_ctx)
    return {"member": member, "other": other, "staff": staff}


@pytest.fixture
def api(released_ctx):
    server = LiveApi(released_ctx.settings)
    yield server
    server.stop()


def count(ctx, **filters) -> int:
    return len(audit.list_events(ctx.conn, limit=100_000, **filters))


def request(http, method: str, path: str):
    if method == "POST" and path.endswith("/runs"):
        return http.post(path, **multipart(TASK, b"x"))
    if method == "POST":
        return http.post(path, json={"dataset": "eunomia", "sql": "SELECT 1"})
    return http.get(path)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_no_token_is_401_on_every_endpoint_and_each_attempt_audited(released_ctx, api,
                                                                     method, path):
    before = count(released_ctx, action="token.use", decision="denied")
    with api.client() as http:
        response = request(http, method, path)
    assert_refusal(response, 401, "token_missing", released_ctx.settings)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert count(released_ctx, action="token.use", decision="denied") == before + 1
    event = audit.list_events(released_ctx.conn, action="token.use")[0]
    assert (event.actor, event.reason) == ("anonymous", "token_missing")


@pytest.mark.parametrize("case", ["malformed", "basic_scheme", "wrong_secret", "expired",
                                  "revoked"])
def test_bad_tokens_are_401_and_audited(released_ctx, who, api, case):
    token = make_api_token(released_ctx, who["member"])
    token_id = tokens.token_id_of(token)
    header = {"malformed": "Bearer acpat_nope", "basic_scheme": f"Basic {token}",
              "wrong_secret": f"Bearer {token[:-6]}AAAAAA"}.get(case, f"Bearer {token}")
    if case == "expired":
        with transaction(released_ctx.conn):
            released_ctx.conn.execute("UPDATE api_tokens SET expires_at = ?",
                                      ("2021-01-01T00:00:00Z",))
    if case == "revoked":
        tokens.revoke_token(released_ctx, who["member"], token_id)
    with api.client(headers={"Authorization": header}) as http:
        response = http.get("/api/v1/runs")
    code = {"expired": "token_expired", "revoked": "token_revoked"}.get(case, "token_invalid")
    assert_refusal(response, 401, code, released_ctx.settings, secrets=(token,))
    event = audit.list_events(released_ctx.conn, action="token.use")[0]
    assert event.reason == code and token not in str(event.to_dict())
    assert event.actor == (MEMBER if case in ("expired", "revoked") else "anonymous")


@pytest.mark.parametrize(("actions", "datasets", "call"), [
    (("sandbox:read",), ("eunomia",), "query"),         # action not granted
    (("query:run",), ("wdbc",), "query"),               # dataset not named
    (("sandbox:submit",), ("eunomia",), "submit"),      # the task's dataset not named
    (("sandbox:read",), ("eunomia",), "budget"),        # action not granted
])
def test_a_token_outside_its_scope_is_403_and_audited(released_ctx, who, api, actions,
                                                      datasets, call):
    make_grant(released_ctx, "acme-health", "eunomia", "row-level")
    token = make_api_token(released_ctx, who["member"], datasets=datasets, actions=actions)
    with api.client(token) as http:
        if call == "query":
            response = http.post("/api/v1/query", json={"dataset": "eunomia",
                                                        "sql": "SELECT 1"})
        elif call == "submit":
            response = http.post("/api/v1/runs", **multipart(TASK, b"x"))
        else:
            response = http.get("/api/v1/budget")
    assert_refusal(response, 403, "token_scope", released_ctx.settings, secrets=(token,))
    event = audit.list_events(released_ctx.conn, action="token.use")[0]
    assert (event.actor, event.decision, event.reason) == (MEMBER, "denied", "token_scope")
    assert count(released_ctx, action="query.run") == 0
    assert count(released_ctx, action="sandbox.submit") == 0


def test_another_teams_token_cannot_see_a_run(released_ctx, who, api):
    run_id = sandbox_services.submit(released_ctx, who["member"], TASK,
                                     wdbc_model(released_ctx), factories.MODEL_CARD, "m.onnx")
    token = make_api_token(released_ctx, who["other"])
    with api.client(token) as http:
        status = http.get(f"/api/v1/runs/{run_id}")
        report = http.get(f"/api/v1/runs/{run_id}/report")
        listed = http.get("/api/v1/runs")
    for response in (status, report):
        assert_refusal(response, 404, "run_not_found", released_ctx.settings, secrets=(token,))
        assert "acme" not in response.text and "test model" not in response.text
    assert listed.json() == []
    probes = audit.list_events(released_ctx.conn, action="sandbox.run.read")
    assert [(e.actor, e.reason) for e in probes] == [(OTHER_MEMBER, "run_not_found")] * 2


@pytest.mark.parametrize("change", ["suspend_member", "suspend_team"])
def test_a_suspended_persons_token_is_403_at_the_next_request(released_ctx, who, api, change):
    token = make_api_token(released_ctx, who["member"])
    with api.client(token) as http:
        assert http.get("/api/v1/token").status_code == 200
        if change == "suspend_member":
            people_services.suspend_member(released_ctx, who["staff"], MEMBER, "incident")
        else:
            people_services.suspend_team(released_ctx, who["staff"], "acme-health", "incident")
        response = http.get("/api/v1/token")
    code = "user_suspended" if change == "suspend_member" else "team_suspended"
    assert_refusal(response, 403, code, released_ctx.settings, secrets=(token,))
    event = audit.list_events(released_ctx.conn, action="token.use")[0]
    assert (event.actor, event.reason) == (MEMBER, code)


@pytest.fixture
def small_api(released_ctx):
    """The API with a 1 MB upload limit."""
    server = LiveApi(dataclasses.replace(released_ctx.settings, api_max_upload_mb=1))
    yield server
    server.stop()


def test_a_declared_oversized_body_is_413_before_it_is_read(released_ctx, who, small_api):
    token = make_api_token(released_ctx, who["member"])
    head = (f"POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: 1000000000\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", small_api.port), timeout=30) as sock:
        sock.sendall(head)  # and not one byte of the gigabyte it announces
        answer = b""
        while b"}}" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 413 " in status_line
    body = rest.split(b"\r\n\r\n", 1)[1].decode()
    assert '"code":"request_too_large"' in body and token not in body
    assert str(released_ctx.settings.home) not in body
    [event] = audit.list_events(released_ctx.conn, action="api.request")
    assert (event.actor, event.decision, event.reason) == (MEMBER, "rejected",
                                                           "request_too_large")
    assert event.details["declared_bytes"] == 1_000_000_000


def test_a_streamed_oversized_body_is_cut_off_at_the_limit(released_ctx, who, small_api):
    token = make_api_token(released_ctx, who["member"])

    def chunks():  # a well-formed multipart start, then 2.5 MB of model, chunked (no length)
        yield (b'--x\r\nContent-Disposition: form-data; name="model"; filename="m.onnx"\r\n'
               b"Content-Type: application/octet-stream\r\n\r\n")
        for _ in range(40):
            yield b"\0" * 65536

    with small_api.client(token) as http:
        response = http.post("/api/v1/runs", content=chunks(),
                             headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert_refusal(response, 413, "request_too_large", released_ctx.settings, secrets=(token,))
    [event] = audit.list_events(released_ctx.conn, action="api.request")
    assert (event.actor, event.reason) == (MEMBER, "request_too_large")
    assert count(released_ctx, action="sandbox.submit") == 0


def test_a_model_over_the_tasks_limit_is_413_and_counted_as_an_attempt(released_ctx, who):
    fast = sandbox_helpers.with_fast_tasks(released_ctx, max_model_mb=1)
    server = LiveApi(dataclasses.replace(fast.settings, api_max_upload_mb=5))
    token = make_api_token(released_ctx, who["member"])
    try:
        with server.client(token) as http:
            response = http.post("/api/v1/runs", **multipart(TASK, b"\x08" * (2 * 2**20)))
    finally:
        server.stop()
    assert_refusal(response, 413, "model_too_large", released_ctx.settings, secrets=(token,))
    [event] = audit.list_events(released_ctx.conn, action="sandbox.submit")
    assert (event.actor, event.decision, event.reason) == (MEMBER, "rejected",
                                                           "model_too_large")


@pytest.mark.parametrize(("model", "code"), [
    (b"\x00garbage that is not a protobuf\xff" * 50, "model_not_onnx"),
    (pickle.dumps({"weights": [1, 2, 3]}, protocol=4), "model_is_pickle"),
    (factories.graph_model(3, "sigmoid"), "model_input_mismatch"),
    (b"", "model_empty"),
])
def test_garbage_and_pickled_models_are_422_and_audited(released_ctx, who, api, model, code):
    token = make_api_token(released_ctx, who["member"])
    with api.client(token) as http:
        response = http.post("/api/v1/runs", **multipart(TASK, model))
    body = assert_refusal(response, 422, code, released_ctx.settings, secrets=(token,))
    assert "model.onnx" not in body["error"]["message"]
    [event] = audit.list_events(released_ctx.conn, action="sandbox.submit")
    assert (event.actor, event.decision, event.reason) == (MEMBER, "rejected", code)


@pytest.mark.parametrize(("tier", "sql", "codes"), [
    ("row-level", "COPY person TO '/tmp/stolen.csv'", {"statement_not_allowed", "invalid_sql"}),
    ("row-level", "SELECT * FROM read_csv('/etc/passwd')", {"function_not_allowed"}),
    ("row-level", "SELECT 1; SELECT 2", {"multiple_statements"}),
    ("row-level", "SELECT * FROM duckdb_settings()", {"function_not_allowed"}),
    ("aggregate", "SELECT person_id, year_of_birth FROM person", None),
])
def test_sql_the_tier_refuses_is_422_and_audited(released_ctx, who, api, tier, sql, codes):
    make_grant(released_ctx, "acme-health", "eunomia", tier)
    token = make_api_token(released_ctx, who["member"], actions=("query:run",))
    with api.client(token) as http:
        response = http.post("/api/v1/query", json={"dataset": "eunomia", "sql": sql})
    assert response.status_code == 422, response.text
    code = response.json()["error"]["code"]
    assert codes is None or code in codes
    assert_refusal(response, 422, code, released_ctx.settings, secrets=(token, "/etc/passwd"))
    [event] = audit.list_events(released_ctx.conn, action="query.run")
    assert (event.actor, event.decision, event.reason) == (MEMBER, "rejected", code)
    assert event.details["sql"] == sql


def test_a_used_up_quota_is_429(released_ctx, who):
    fast = sandbox_helpers.with_fast_tasks(released_ctx, attempts_per_day=1)
    server = LiveApi(fast.settings)
    token = make_api_token(released_ctx, who["member"])
    try:
        with server.client(token) as http:
            first = http.post("/api/v1/runs", **multipart(TASK, b"not a model"))
            second = http.post("/api/v1/runs", **multipart(TASK, b"not a model"))
    finally:
        server.stop()
    assert first.status_code == 422
    assert_refusal(second, 429, "attempt_quota_exceeded", released_ctx.settings)
    events = audit.list_events(released_ctx.conn, action="sandbox.submit")
    assert [e.reason for e in events] == ["attempt_quota_exceeded", "model_not_onnx"]


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/api/v1/runs/99999999999999999999999", 422, "invalid_request"),
    ("/api/v1/runs/-1", 422, "invalid_request"),
    ("/api/v1/runs/abc", 422, "invalid_request"),
    ("/api/v1/runs/424242", 404, "run_not_found"),
])
def test_run_ids_that_do_not_exist_or_parse_are_refused_and_audited(released_ctx, who, api,
                                                                    path, status, code):
    token = make_api_token(released_ctx, who["member"])
    with api.client(token) as http:
        response = http.get(path)
    assert_refusal(response, status, code, released_ctx.settings, secrets=(token,))
    action = "api.request" if code == "invalid_request" else "sandbox.run.read"
    [event] = audit.list_events(released_ctx.conn, action=action)
    assert (event.actor, event.reason) == (MEMBER, code)


@pytest.mark.parametrize("body", [b"{not json", b'{"dataset": "eunomia"}',
                                  b'{"dataset": "eunomia", "sql": "SELECT 1", "tier": "x"}',
                                  b'["SELECT 1"]'])
def test_malformed_query_bodies_are_422_and_audited(released_ctx, who, api, body):
    token = make_api_token(released_ctx, who["member"])
    with api.client(token) as http:
        response = http.post("/api/v1/query", content=body,
                             headers={"Content-Type": "application/json"})
    assert_refusal(response, 422, "invalid_request", released_ctx.settings, secrets=(token,))
    [event] = audit.list_events(released_ctx.conn, action="api.request")
    assert (event.actor, event.reason) == (MEMBER, "invalid_request")


def test_an_unknown_task_is_404_and_audited(released_ctx, who, api):
    token = make_api_token(released_ctx, who["member"])
    with api.client(token) as http:
        response = http.post("/api/v1/runs", **multipart("../../etc/passwd", b"x"))
    assert_refusal(response, 404, "task_not_found", released_ctx.settings,
                   secrets=(token, "/etc/passwd"))
    [event] = audit.list_events(released_ctx.conn, action="sandbox.submit")
    assert (event.actor, event.decision, event.reason) == (MEMBER, "denied", "task_not_found")


def test_a_broken_multipart_body_is_400_and_audited(released_ctx, who, api):
    token = make_api_token(released_ctx, who["member"])
    with api.client(token) as http:
        response = http.post("/api/v1/runs", content=b"\0" * 5000,
                             headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert_refusal(response, 400, "invalid_request", released_ctx.settings, secrets=(token,))
    [event] = audit.list_events(released_ctx.conn, action="api.request")
    assert (event.actor, event.reason) == (MEMBER, "invalid_request")
