"""Executing one claimed validation run, start to finish, in the trusted parent.

features (held-out SQL, or a synthetic twin for a dry run) → shuffle with the recorded seed →
isolated scorer (``sandbox.isolation``) → prediction checks → metrics → report + signed receipt.
Labels and subgroup attributes never leave this process.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from portal.catalog.releases import current_release
from portal.config import Settings
from portal.errors import PortalError
from portal.store.db import utcnow
from sandbox import disclosure, features, isolation, metrics, publish, receipts, report, store
from sandbox.store import task_version
from sandbox.tasks import TaskCard


@dataclass
class RunResult:
    """``outcome`` is ``ok`` or a failure code from ``sandbox.states.OUTCOMES``;
    ``singling_out`` is :func:`sandbox.disclosure.singling_out` of the scores (validations)."""

    outcome: str
    message: str
    release_version: str | None = None
    report: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    singling_out: dict[str, Any] | None = None


def model_path(settings: Settings, sha256: str) -> Path:
    return settings.models_dir / sha256[:2] / f"{sha256}.onnx"


def check_predictions(predictions: np.ndarray | None, rows: int) -> str | None:
    """Why the predictions are unusable (a message for the team), or None when they are fine."""
    if predictions is None or predictions.shape != (rows,):
        return "the model did not return one prediction per row"
    if np.isnan(predictions).any():
        return "some predictions are NaN"
    if np.isinf(predictions).any():
        return "some predictions are infinite"
    if (predictions < 0).any() or (predictions > 1).any():
        return "some predictions lie outside 0..1 (probabilities are required)"
    if rows > 1 and np.all(predictions == predictions[0]):
        return "every prediction is the same value (a constant model cannot be validated)"
    return None


def _score(settings: Settings, card: TaskCard, model_bytes: bytes,
           matrix: isolation.FeatureSource, job_id: int
           ) -> tuple[RunResult | None, np.ndarray | None, dict[str, Any]]:
    limits = isolation.Limits(wall_seconds=card.limits.wall_seconds,
                              memory_mb=card.limits.memory_mb)
    try:
        scored = isolation.run_scorer(model_bytes, matrix, card.input.name, limits, job_id,
                                      allow_unisolated=settings.sandbox_allow_unisolated,
                                      hide=(settings.home,))
    except isolation.IsolationUnavailable:
        return RunResult("isolation_unavailable", "Isolation is unavailable on this worker, so "
                         "the model was not run. Staff have been told."), None, {}
    info = {"seconds": round(scored.seconds, 3), "isolated": scored.isolated}
    if scored.outcome != "ok":
        return RunResult(scored.outcome, scored.log or scored.outcome.replace("_", " "),
                         details=info), None, info
    rows = scored.predictions.shape[0] if scored.predictions is not None else 0
    problem = check_predictions(scored.predictions, rows)
    if problem:
        return RunResult("invalid_predictions", problem, details=info), None, info
    return None, scored.predictions, info


def execute(settings: Settings, conn: sqlite3.Connection, run: sqlite3.Row) -> RunResult:
    """Run one claimed run and return its result. Raises only for platform faults (which the
    worker records as ``internal_error``)."""
    card = task_version(conn, run["task_id"], run["task_version"])
    data = model_path(settings, run["sha256"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != run["sha256"]:
        raise PortalError("model_store_corrupt", "stored model does not match its hash")
    if run["kind"] == "dry_run":
        return _dry_run(settings, card, data, run)
    release = current_release(conn, settings, card.dataset)
    seed = int(run["shuffle_seed"])
    built: dict[str, Any] = {}

    def shuffled_features() -> np.ndarray:  # built while the scorer loads the model
        built["held"] = held = features.build_holdout(card, release.holdout_path)
        built["order"] = features.shuffle_order(held.rows, seed)
        return held.features[built["order"]]

    failure, shuffled_predictions, info = _score(settings, card, data, shuffled_features,
                                                 int(run["id"]))
    if failure:
        failure.release_version = release.version
        return failure
    held, order = built["held"], built["order"]
    predictions = np.empty(held.rows, dtype=float)
    predictions[order] = shuffled_predictions
    figures = metrics.compute(held.labels, predictions, list(card.thresholds), held.groups,
                              card.subgroups.min_size)
    check = disclosure.singling_out(predictions, list(card.thresholds), card.min_cell)
    sides = disclosure.score_sides(predictions, disclosure.fixed_edges(list(card.thresholds)))
    if run["final_report"]:
        _check_against_earlier_finals(settings, conn, run, card, check, sides)
    body = _report_body(card, run, {"dataset": card.dataset, "version": release.version},
                        {"rows": held.rows, "shuffle_seed": seed, "synthetic": False},
                        info, figures)
    body["review"] = {"singling_out": check, "sides": sides}
    body["receipt"] = receipts.sign(settings, body, publish._bound(body))
    return RunResult("ok", "validation finished", release.version, body, info, check)


def _check_against_earlier_finals(settings: Settings, conn: sqlite3.Connection,
                                  run: sqlite3.Row, card: TaskCard, check: dict[str, Any],
                                  sides: dict[str, str]) -> None:
    """Add to ``check`` a flag for each earlier final submission of the team whose released
    counts this one's would difference down to fewer than the minimum of rows."""
    others = {}
    for row in store.earlier_final_reports(conn, run["team"], run["task_id"],
                                           run["task_version"], run["id"]):
        exact = publish.read_exact(settings, row)
        others[int(row["id"])] = ((exact or {}).get("review") or {}).get("sides") or {}
    reasons = disclosure.differencing(sides, others, card.min_cell)
    check["signals"]["earlier_finals_compared"] = len(others)
    if reasons:
        check["reasons"].extend(reasons)
        check["flagged"] = True


def _dry_run(settings: Settings, card: TaskCard, data: bytes, run: sqlite3.Row) -> RunResult:
    matrix = features.synthetic_twin(card, seed=int(run["shuffle_seed"]))
    failure, predictions, info = _score(settings, card, data, matrix, int(run["id"]))
    if failure:
        return failure
    assert predictions is not None
    return RunResult("ok", f"Dry run passed: {matrix.shape[0]} synthetic rows scored in "
                     f"{info['seconds']:.2f} s; predictions are valid probabilities.",
                     details=info)


def _report_body(card: TaskCard, run: sqlite3.Row, release: dict[str, Any],
                 data: dict[str, Any], scoring: dict[str, Any],
                 figures: dict[str, Any]) -> dict[str, Any]:
    body = report.build(
        run={"id": int(run["id"]), "kind": run["kind"], "team": run["team"],
             "requested_by": run["requested_by"], "created_at": run["created_at"],
             "rerun_of": run["rerun_of"]},
        model={"sha256": run["sha256"], "name": run["model_name"],
               "version": run["model_version"], "intended_use": run["intended_use"],
               "training_data": run["training_data"], "size_bytes": int(run["size_bytes"])},
        release=release,
        task={"id": card.id, "version": card.version, "protocol_hash": card.protocol_hash,
              "title": card.title, "question": card.question,
              "primary_metric": card.primary_metric, "thresholds": list(card.thresholds),
              "min_subgroup_size": card.subgroups.min_size,
              "features": card.feature_names},
        data=data, scoring=scoring, figures=figures, code_version=receipts.code_version(),
        generated_at=utcnow())
    # staff only; a random nonce makes the exact body's hash, which the released receipt
    # signs, reveal nothing testable about the exact figures
    body.update(view="exact", nonce=secrets.token_hex(16))
    return body


def write_report(settings: Settings, run_id: int, body: dict[str, Any]) -> str:
    """Write the exact report's JSON and HTML once (see :func:`sandbox.publish.write`);
    returns the JSON file's name."""
    return publish.write(settings, run_id, body, "exact")
