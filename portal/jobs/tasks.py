"""The portal's job tasks, shared by both job engines.

Each handler is ``handler(settings, conn, owner, **args) -> int`` (validation runs finished) and
is safe to run more than once for the same job: delivery is at least once.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

from portal import audit
from portal.store.db import transaction

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "system:revalidate"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def validation_run(settings: Any, conn: Any, owner: str, *, run_id: int) -> int:
    """Claim and execute one validation run (nothing when it is no longer queued)."""
    from sandbox import worker

    return worker.run_job(settings, conn, owner, int(run_id))


def sweep(settings: Any, conn: Any, owner: str, **_: Any) -> int:
    """Put runs of dead workers back in the queue (or fail them after their tries), close the
    queries of processes that died mid-query (audited), and make sure every queued validation
    run has a job waiting for it."""
    from portal.store.db import engine_of
    from sandbox import store

    if engine_of(conn) == "postgresql":
        from portal.jobs import engine_pg

        engine_pg.retry_stalled_jobs(conn)
    store.requeue_expired(conn, owner)
    from portal.services.context import Context
    from portal.services.query import close_abandoned_runs

    close_abandoned_runs(Context(settings=settings, conn=conn))  # queries of dead processes
    for run_id in store.queued_run_ids(conn, kinds=("validation",)):
        from portal import jobs

        jobs.defer(conn, "validation.run", key=f"run:{run_id}", run_id=run_id)
    return 0


def build_extracts(settings: Any, conn: Any, owner: str, *, dataset_id: str) -> int:
    """Build the governed extracts of a dataset's current release for every tier that an
    active grant uses, so that any portal server finds them ready on the shared storage."""
    from portal.query.extracts import build_extract
    from portal.services.context import Context
    from portal.services.policies import resolved_tier

    ctx = Context(settings=settings, conn=conn)
    tiers = [r["tier"] for r in conn.execute(
        "SELECT DISTINCT tier FROM grants WHERE dataset_id = ? AND status = 'active'"
        " ORDER BY tier", (dataset_id,)).fetchall()]
    for tier in tiers:
        release, resolved = resolved_tier(ctx, dataset_id, tier)
        build_extract(settings, release, resolved)
    return 0


def revalidate(settings: Any, conn: Any, owner: str, **_: Any) -> int:
    """Periodic re-validation: for every task, re-run each team's latest released (or completed)
    model whose last result was computed on an older release than the dataset's current one.
    Skips teams that already have a run waiting or running on the task. One audit event."""
    from portal.catalog.releases import current_release
    from portal.errors import PortalError
    from portal.services import sandbox as sandbox_services
    from portal.services.context import Context
    from sandbox import store

    ctx = Context(settings=settings, conn=conn)
    queued: list[int] = []
    for card in sandbox_services.tasks(ctx).values():
        try:
            version = current_release(conn, settings, card.dataset).version
        except PortalError:
            continue
        with transaction(conn):
            for row in store.stale_latest_runs(conn, card.id, version):
                queued.append(store.insert_run(
                    conn, kind="validation", card=card, team=row["team"],
                    requested_by=SYSTEM_ACTOR, model_id=row["model_id"], rerun_of=row["id"]))
    if queued:
        audit.record(conn, actor=SYSTEM_ACTOR, action="sandbox.revalidate", decision="done",
                     details={"runs": queued})
    return 0


HANDLERS: dict[str, Callable[..., int]] = {
    "validation.run": validation_run,
    "validation.sweep": sweep,
    "validation.revalidate": revalidate,
    "extracts.build": build_extracts,
}
# Validation work and the light bookkeeping run on separate queues, so that a deployment can
# give heavy scoring its own machines (``portal worker --queue validation``).
QUEUES = {"validation.run": "validation", "validation.sweep": "maintenance",
          "validation.revalidate": "maintenance", "extracts.build": "extracts"}
