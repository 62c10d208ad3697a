"""The team-visible report of a run: made once, when the run's report becomes visible to its
team (a finish without review, or a staff release), inside that write transaction.

The exact report (``view: exact``, written by the worker) stays for staff. The released report
(``view: released``) is built from it by :mod:`sandbox.disclosure`: a *final* submission (a
limited number per team and task version, ``disclosure.final_reports`` on the card) gets the
full report with every figure released through its mechanism; any other submission gets only
the primary metric as the team's Ladder shows it. Its receipt signs both reports' hashes.

Read reports through :func:`read_exact` / :func:`read_released`; the use cases that check who
may read which are ``portal.services.sandbox.staff_report`` and ``released_report``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from portal.config import Settings
from portal.storage import write_once
from portal.store.db import utcnow
from sandbox import disclosure, receipts, report, store

SCHEMA_VERSION = 2
MECHANISM = ("Figures are rounded to a grid of step about 1/sqrt(cases); counts over scores are "
             "given only for cells with at least {min_cell} positive and {min_cell} negative "
             "cases; subgroups need as many of each; the primary metric of a non-final "
             "submission follows the Ladder (it changes only when a submission beats the "
             "team's best by {margin:g}).")


def _read(settings: Settings, name: str | None) -> dict[str, Any] | None:
    if not name:
        return None
    return json.loads((settings.reports_dir / name).read_text(encoding="utf-8"))


def read_exact(settings: Settings, run: sqlite3.Row) -> dict[str, Any] | None:
    """The run's exact report (staff only), or None when it has none."""
    return _read(settings, run["report_file"])


def read_released(settings: Settings, run: sqlite3.Row) -> dict[str, Any] | None:
    """The run's released report, or None while none was made (not yet visible to the team,
    or a failed run)."""
    return _read(settings, run["released_file"])


def html_path(settings: Settings, name: str) -> Path:
    return (settings.reports_dir / name).with_suffix(".html")


def _bound(body: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": body["run"]["id"], "model_sha256": body["model"]["sha256"],
            "release_version": body["release"]["version"],
            "protocol_hash": body["task"]["protocol_hash"],
            "code_version": body["code_version"], "generated_at": body["generated_at"]}


def released_body(exact: dict[str, Any], *, final: bool, min_cell: int,
                  ladder: dict[str, Any], budget: dict[str, int],
                  generated_at: str) -> dict[str, Any]:
    """The released report's body (without receipt) built from the exact report ``exact``."""
    figures = exact["metrics"]
    step = disclosure.grid_step(int(figures["overall"]["n"]))
    metric = exact["primary"]["metric"]
    body: dict[str, Any] = {
        "schema": report.SCHEMA, "schema_version": SCHEMA_VERSION, "view": "released",
        "final": final,
        **{key: exact[key] for key in ("run", "model", "release", "task", "code_version")},
        "data": {"rows": exact["data"]["rows"], "synthetic": exact["data"]["synthetic"]},
        "scoring": {"isolated": exact["scoring"].get("isolated")},
        "generated_at": generated_at,
        "ladder": ladder, "budget": budget,
    }
    if final:
        released = disclosure.release_figures(figures, min_cell)
        primary = released["overall"].get(metric) or {}
        body["primary"] = {"metric": metric, "value": primary.get("value"),
                           "lower": primary.get("lower"), "upper": primary.get("upper"),
                           "source": "this submission"}
        body["metrics"] = released
        bound = disclosure.max_bits(released)
    else:
        body["primary"] = {"metric": metric, "value": ladder["best"], "lower": None,
                           "upper": None, "source": "ladder"}
        body["metrics"] = None
        bound = disclosure.bits(step)
    body["disclosure"] = {
        "grid_step": step, "min_cell": min_cell, "ladder_margin": ladder["margin"],
        "max_bits": bound,
        "mechanism": MECHANISM.format(min_cell=min_cell, margin=ladder["margin"]),
    }
    return body


def publish(settings: Settings, conn: sqlite3.Connection, run_id: int) -> dict[str, Any]:
    """Make the run's released report: put its primary metric through the team's Ladder,
    build and sign the released body, write its JSON and HTML once, and record them on the run.
    Joins the caller's write transaction (the one that makes the report visible). Returns the
    released report. Raises NotFound when the run or its task version is unknown."""
    run = store.get_run(conn, run_id)
    card = store.task_version(conn, run["task_id"], run["task_version"])
    exact = read_exact(settings, run)
    if exact is None:
        raise ValueError(f"run {run_id} has no exact report to release")
    n = int(exact["metrics"]["overall"]["n"])
    step = disclosure.grid_step(n)
    ladder = store.ladder_submit(
        conn, team=run["team"], task_id=run["task_id"], task_version=run["task_version"],
        metric=card.primary_metric, value=exact["primary"]["value"], run_id=int(run_id),
        margin=card.disclosure.ladder_margin or step, step=step)
    budget = {"final_reports_used": store.final_reports_used(
                  conn, run["team"], run["task_id"], run["task_version"]),
              "final_reports_limit": card.disclosure.final_reports}
    body = released_body(exact, final=bool(run["final_report"]), min_cell=card.min_cell,
                         ladder=ladder, budget=budget, generated_at=utcnow())
    body["receipt"] = receipts.sign(settings, body, _bound(body), exact=exact)
    name = write(settings, int(run_id), body, "released")
    conn.execute("UPDATE sandbox_runs SET released_file = ?, released_primary = ? WHERE id = ?",
                 (name, body["primary"]["value"], int(run_id)))
    return body


def write(settings: Settings, run_id: int, body: dict[str, Any], view: str) -> str:
    """Write ``run-<id>[-released]-<digest>.json`` and ``.html`` under the reports folder, each
    once and atomically; returns the JSON file's name (relative to the reports folder).

    The name carries the SHA-256 of the JSON, so two workers that ran the same run (one of
    them after losing its lease) never replace each other's files: the store's row says which
    report is the run's."""
    text = json.dumps(body, indent=1, sort_keys=True, allow_nan=False)
    tag = "-released" if view == "released" else ""
    name = f"run-{int(run_id)}{tag}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]}"
    write_once(settings.reports_dir / f"{name}.json", text.encode("utf-8"), 0o640)
    write_once(settings.reports_dir / f"{name}.html",
               report.render_html(body).encode("utf-8"), 0o640)
    return f"{name}.json"
