"""Serving the real API over real HTTP for tests: uvicorn on a free loopback port, in a thread
of the test process (``LiveApi``) or as the ``portal api`` command in a subprocess."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from portal.api.app import create_app
from portal.config import Settings
from portal.services import tokens
from portal.services.context import Context
from portal.store.db import open_store

ALL_ACTIONS = tuple(tokens.ACTIONS)


class LiveApi:
    """The API app served by uvicorn on 127.0.0.1 and an ephemeral port (never a fixed one)."""

    def __init__(self, settings: Settings) -> None:
        open_store(settings).close()
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0,
                                log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.port = port

    def client(self, token: str | None = None, headers: dict | None = None) -> httpx.Client:
        sent = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=sent | (headers or {}), timeout=120)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def make_api_token(ctx: Context, principal, datasets=("wdbc", "eunomia"),
                   actions=ALL_ACTIONS, name: str = "CI") -> str:
    return tokens.create_token(ctx, principal, name, list(datasets), list(actions)).secret


def assert_refusal(response: httpx.Response, status: int, code: str, settings: Settings,
                   secrets: tuple[str, ...] = ()) -> dict:
    """The response is exactly ``{"error": {"code", "message"}}`` with this status and code,
    and leaks nothing: no paths, no stack trace, no token text."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code, body
    text = response.text
    for leak in (str(settings.home), str(Path(__file__).resolve().parents[3]), "Traceback",
                 'File "', "sqlite", "duckdb.", *secrets):
        assert leak not in text, leak
    return body


def multipart(task: str, model: bytes, dry_run: bool = False, **card: str) -> dict:
    fields = {"task": task, "name": "ci model", "version": "1.0",
              "intended_use": "testing the API", "training_data": "the dev partition",
              "dry_run": json.dumps(dry_run)}
    fields.update(card)
    return {"data": fields, "files": {"model": ("model.onnx", model, "application/octet-stream")}}
