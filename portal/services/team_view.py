"""What a startup team may see of a validation report: the one accessor for team-visible figures.

Every view a team sees (the run page, the leaderboard, the model card and TRIPOD+AI exports)
reads report figures through :func:`team_report` and nothing else, so the rule for what a team
may see of a report (rounding, suppression, limited full reports) changes in one place. Staff
views read the exact report through :func:`staff_report`.
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


def _load(ctx: Context, run: sqlite3.Row | dict[str, Any]) -> dict[str, Any]:
    if not run["report_file"]:
        raise NotFound("report_not_found", "This run has no report (see its outcome).")
    return json.loads(_report_text(str(ctx.settings.reports_dir / run["report_file"])))


def team_report(ctx: Context, run: sqlite3.Row | dict[str, Any]) -> dict[str, Any]:
    """The report of ``run`` (a ``sandbox_runs`` row) as a startup team may see it.

    The caller has already checked that the viewer may see this run's report (its own team's
    completed or released run, or a released leaderboard entry). Returns a fresh dict. Raises
    NotFound(code='report_not_found') for a run without a report."""
    return _load(ctx, run)


def staff_report(ctx: Context, run: sqlite3.Row | dict[str, Any]) -> dict[str, Any]:
    """The exact report of ``run``, for platform staff only (the caller checks the role)."""
    return _load(ctx, run)


def report_for(ctx: Context, run: sqlite3.Row | dict[str, Any], staff: bool) -> dict[str, Any]:
    """:func:`staff_report` for staff, else :func:`team_report`."""
    return staff_report(ctx, run) if staff else team_report(ctx, run)
