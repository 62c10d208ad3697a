"""HTTP API: submit → status latency for a real ONNX model on the wdbc task, over real HTTP to
``portal api`` (uvicorn, its own process), against calling the same services directly
(``portal.services.sandbox.submit`` then ``run_status``) in this process, interleaved in the
same run. Prints median and p95 of each and the ratio of medians. Goal (overhead of the HTTP
layer, token check and multipart upload included): API median ≤ 2× direct + 20 ms.

Options: ``--repeat N`` (default 30).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASK = "wdbc-malignancy"
CARD = {"name": "bench model", "version": "1", "intended_use": "benchmark",
        "training_data": "the dev partition"}


def _tasks(folder: Path) -> None:
    """The bundled cards with quotas high enough for the benchmark's submissions."""
    folder.mkdir()
    for path in (ROOT / "sandbox" / "tasks").glob("*.yaml"):
        text = re.sub(r"valid_runs_per_day: \d+", "valid_runs_per_day: 1000", path.read_text())
        text = re.sub(r"attempts_per_day: \d+", "attempts_per_day: 10000", text)
        (folder / path.name).write_text(text)


def _model(ctx) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from portal.catalog.releases import current_release
    from portal.services import sandbox as services
    from sandbox import features

    card = services.get_task(ctx, TASK)
    dev = features.build_holdout(card, current_release(ctx.conn, ctx.settings,
                                                       card.dataset).dev_path)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(dev.features, dev.labels.astype(int))
    return to_onnx(model, initial_types=[("input", FloatTensorType([None, card.width]))],
                   options={id(model): {"zipmap": False}}, target_opset=17).SerializeToString()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _summary(name: str, seconds: list[float]) -> tuple[float, str]:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    median = statistics.median(ms)
    return median, f"{name}: median {median:.1f} ms, p95 {p95:.1f} ms"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench api")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args(argv)

    import httpx

    from portal.catalog.builder import build_release
    from portal.config import Settings
    from portal.devserver import start_api, stop
    from portal.identity import principal_for_email
    from portal.services import sandbox as services
    from portal.services import tokens
    from portal.services.context import Context
    from portal.store import people
    from portal.store.db import transaction

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        _tasks(Path(tmp) / "tasks")
        env = {"PORTAL_HOME": f"{tmp}/home", "PORTAL_TASKS_DIR": f"{tmp}/tasks"}
        settings = Settings.from_env(env)
        ctx = Context.open(settings)
        build_release(settings, ctx.conn, "wdbc", actor="bench")
        with transaction(ctx.conn):
            user = people.ensure_user(ctx.conn, email="bench@bench-team.example", role="member")
            people.set_membership(ctx.conn, user, people.ensure_team(ctx.conn, "bench-team",
                                                                     "Bench"))
        member = principal_for_email(ctx.conn, "bench@bench-team.example")
        secret = tokens.create_token(ctx, member, "bench", ["wdbc"],
                                     ["sandbox:submit", "sandbox:read"]).secret
        model = _model(ctx)
        port = _free_port()
        api = start_api(settings, "127.0.0.1", port, environ={**os.environ, **env},
                        log_path=Path(tmp) / "api.log")
        api_times, direct_times = [], []
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                              headers={"Authorization": f"Bearer {secret}"}) as http:
                for i in range(args.repeat + 2):  # the first two of each warm up
                    started = time.perf_counter()
                    run = http.post("/api/v1/runs", data={"task": TASK, **CARD},
                                    files={"model": ("model.onnx", model)}).json()
                    status = http.get(f"/api/v1/runs/{run['id']}").json()
                    api_seconds = time.perf_counter() - started
                    assert status["status"] == "queued", status
                    started = time.perf_counter()
                    run_id = services.submit(ctx, member, TASK, model, CARD, "model.onnx")
                    assert services.run_status(ctx, member, run_id)["status"] == "queued"
                    direct_seconds = time.perf_counter() - started
                    if i >= 2:
                        api_times.append(api_seconds)
                        direct_times.append(direct_seconds)
        finally:
            stop(api)
            ctx.close()
    print(f"{args.repeat} submissions each of a {len(model):,}-byte ONNX model "
          f"(wdbc logistic regression), interleaved; python {sys.version.split()[0]}")
    api_median, api_line = _summary("API submit→status over HTTP", api_times)
    direct_median, direct_line = _summary("services.submit→run_status in-process",
                                          direct_times)
    print(api_line)
    print(direct_line)
    goal = 2 * direct_median + 20
    print(f"ratio API / direct (medians): {api_median / direct_median:.2f}×; goal median ≤ 2× "
          f"direct + 20 ms = {goal:.1f} ms: {'met' if api_median <= goal else 'NOT met'}")
