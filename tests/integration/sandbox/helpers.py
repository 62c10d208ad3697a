"""Helpers for sandbox integration tests on real releases (plain functions)."""

from __future__ import annotations

import numpy as np

from portal.catalog.releases import current_release
from portal.identity import Principal
from portal.services import sandbox as services
from portal.services.context import Context
from sandbox import features, isolation
from tests.conftest import require_or_skip
from tests.factories import make_user
from tests.unit.sandbox import factories

MEMBER = "analyst@acme-health.example"
OTHER_MEMBER = "analyst@beta-bio.example"
STAFF = "staff@platform.example"


def need_isolation() -> None:
    require_or_skip(isolation.isolation_available(), "PORTAL_REQUIRE_ISOLATION",
                    "isolation (bubblewrap, setpriv, prlimit, python3-seccomp, root) is "
                    "not available here")


def people(ctx: Context) -> tuple[Principal, Principal, Principal]:
    return (make_user(ctx, MEMBER, team="acme-health"),
            make_user(ctx, OTHER_MEMBER, team="beta-bio"),
            make_user(ctx, STAFF, role="staff"))


def dev_training_data(ctx: Context, task_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The task's published feature and label SQL run on the dev partition (what a team can
    build for itself)."""
    card = services.get_task(ctx, task_id)
    release = current_release(ctx.conn, ctx.settings, card.dataset)
    dev = features.build_holdout(card, release.dev_path)
    return dev.features, dev.labels.astype(int)


def held_out(ctx: Context, task_id: str = "wdbc-malignancy"):
    """The task's held-out features, labels and groups on the current release (what an
    attacker who knows the targets' features would aim at; the labels to check against)."""
    card = services.get_task(ctx, task_id)
    release = current_release(ctx.conn, ctx.settings, card.dataset)
    return features.build_holdout(card, release.holdout_path)


def wdbc_model(ctx: Context) -> bytes:
    X, y = dev_training_data(ctx, "wdbc-malignancy")
    return factories.logistic_onnx(X, y)


def run_queue(ctx: Context) -> int:
    return services.process_queue(ctx, once=True)


def build_template(home, datasets: tuple[str, ...]) -> None:
    """Build real releases of ``datasets`` into ``home`` with the release builder."""
    from portal.config import Settings

    build_releases(Settings.from_env({"PORTAL_HOME": str(home), "PORTAL_ENV": "development"}),
                   datasets)


def build_releases(template, datasets: tuple[str, ...]) -> None:
    """Build real releases of ``datasets`` for ``template`` settings with the release builder."""
    from portal.catalog.builder import build_release

    context = Context.open(template)
    try:
        for dataset_id in datasets:
            build_release(template, context.conn, dataset_id, actor="system")
    finally:
        context.close()


def copy_template(template_home, settings) -> Context:
    import shutil

    shutil.copytree(template_home, settings.home, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("raw", ".lock"))
    return Context.open(settings)


def with_fast_tasks(ctx: Context, wall_seconds: float = 4, **quotas: int) -> Context:
    """The same context with the bundled cards copied and their wall-time limit (and any
    ``quotas``) changed — limits and quotas are not part of the protocol."""
    import dataclasses
    import re

    folder = ctx.settings.home / "fast-tasks"
    folder.mkdir(exist_ok=True)
    for path in (ctx.settings.tasks_dir).glob("*.yaml"):
        text = re.sub(r"wall_seconds: \d+", f"wall_seconds: {wall_seconds}", path.read_text())
        for key, value in quotas.items():
            text = re.sub(rf"{key}: \d+", f"{key}: {value}", text)
        (folder / path.name).write_text(text)
    return Context(dataclasses.replace(ctx.settings, tasks_dir=folder), ctx.conn)
