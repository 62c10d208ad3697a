"""A portal service process for the multi-machine tests: what a portal server does, without the
browser. It reads one JSON request per line on standard input, handles up to four at once
(each on its own store connection, as a server's sessions do) and writes one JSON answer per
line: ``{"id": ..., "ok": true, ...}`` or ``{"id": ..., "ok": false, "code": ...}``.

Requests: ``{"op": "submit", "email", "task", "model"}`` (a model file path) and
``{"op": "query", "email", "dataset", "sql"}``.
"""

from __future__ import annotations

import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from portal.config import Settings
from portal.errors import PortalError
from portal.identity import principal_for_email
from portal.query.pool import shutdown_pool
from portal.services import query as query_services
from portal.services import sandbox as sandbox_services
from portal.services.context import Context
from tests.unit.sandbox.factories import MODEL_CARD

_out = threading.Lock()
_local = threading.local()


def _ctx(settings: Settings) -> Context:
    if getattr(_local, "ctx", None) is None:
        _local.ctx = Context.open(settings)
    return _local.ctx


def handle(settings: Settings, request: dict) -> dict:
    ctx = _ctx(settings)
    try:
        principal = principal_for_email(ctx.conn, request["email"])
        if request["op"] == "submit":
            run_id = sandbox_services.submit(ctx, principal, request["task"],
                                             Path(request["model"]).read_bytes(), MODEL_CARD)
            return {"ok": True, "run_id": run_id}
        result = query_services.run_query(ctx, principal, request["dataset"], request["sql"])
        return {"ok": True, "rows": result.row_count}
    except PortalError as exc:
        return {"ok": False, "code": exc.code}
    except Exception as exc:  # reported to the test, which fails on it
        return {"ok": False, "code": f"unexpected:{type(exc).__name__}:{exc}"}


def main() -> int:
    settings = Settings.from_env()
    with ThreadPoolExecutor(max_workers=4) as pool:
        def answer(line: str) -> None:
            request = json.loads(line)
            reply = {"id": request["id"], **handle(settings, request)}
            with _out:
                sys.stdout.write(json.dumps(reply) + "\n")
                sys.stdout.flush()

        for line in sys.stdin:
            if line.strip():
                pool.submit(answer, line)
    shutdown_pool()
    return 0


if __name__ == "__main__":
    sys.exit(main())
