"""What a startup team may see of a validation report: the one accessor for team-visible figures
in the run page, the leaderboard and the model card and TRIPOD+AI exports.

:func:`team_report` gives the run's *released* report (``sandbox.publish``: figures rounded and
small cells suppressed for a final submission, the Ladder's primary metric only otherwise —
``metrics`` is then null); :func:`staff_report` the exact one. Reading goes through here and
nothing else, so the rule for what a team may see changes in one place. The callers check who
may read which (``portal.services.sandbox.reportable_run``) and audit what they do with it.
"""

from __future__ import annotations

import json
import sqlite3
from functools import lru_cache
from pathlib import Path
from typing import Any

from portal.errors import NotFound
from portal.services.context import Context


@lru_cache(maxsize=256)
def _report_text(path: str) -> str:
    # Report files are write-once and content-addressed (their name carries their hash), so a
    # cached text never goes stale.
    return Path(path).read_text(encoding="utf-8")


def _load(ctx: Context, name: str | None) -> dict[str, Any]:
    if not name:
        raise NotFound("report_not_found", "This run has no report you can see.")
    return json.loads(_report_text(str(ctx.settings.reports_dir / name)))


def team_report(ctx: Context, run: sqlite3.Row | dict[str, Any]) -> dict[str, Any]:
    """The released report of ``run`` (a ``sandbox_runs`` row): what a startup team may see.

    The caller has already checked that the viewer may see it (its own team's visible run, or
    a public leaderboard entry). Returns a fresh dict. Raises NotFound(code='report_not_found')
    while the run has no released report."""
    return _load(ctx, run["released_file"])


def staff_report(ctx: Context, run: sqlite3.Row | dict[str, Any]) -> dict[str, Any]:
    """The exact report of ``run``, for platform staff only (the caller checks the role)."""
    return _load(ctx, run["report_file"])


def report_for(ctx: Context, run: sqlite3.Row | dict[str, Any], staff: bool) -> dict[str, Any]:
    """:func:`staff_report` for staff, else :func:`team_report`."""
    return staff_report(ctx, run) if staff else team_report(ctx, run)
