"""Building what a validation needs from a release, in the trusted parent.

The task's population, label and feature SQL run against the release's held-out DuckDB file,
opened read-only and locked. The result is split: the float32 feature matrix (the only thing the
scorer ever receives) and the labels and subgroup attributes (which stay in the parent).
Rows are kept in a canonical order (by ``row_id``) for metrics, and shuffled with a recorded seed
before they go to the scorer, so a model cannot learn anything from the row order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from portal.errors import InternalError
from portal.query.worker import connect_locked
from portal.sqltext import quote_ident
from sandbox.tasks import TaskCard

TWIN_ROWS = 256


@dataclass(frozen=True)
class HeldOut:
    """Held-out cases in canonical order. ``features`` may go to the scorer; nothing else may."""

    row_ids: np.ndarray
    features: np.ndarray  # float32 [N, D]
    labels: np.ndarray  # float64 0/1 [N]
    groups: dict[str, np.ndarray]

    @property
    def rows(self) -> int:
        return int(self.features.shape[0])




def holdout_sql(card: TaskCard) -> str:
    """The one query that yields row_id, label, subgroup attributes and features in order."""
    groups = [f"p.{quote_ident(g.column)} AS {quote_ident('group_' + g.name)}"
              for g in card.subgroups.groups]
    feats = [f"CAST(f.{quote_ident(c.name)} AS DOUBLE) AS {quote_ident('feature_' + c.name)}"
             for c in card.features.columns]
    select = ", ".join(["p.row_id AS row_id", "CAST(l.label AS DOUBLE) AS label", *groups, *feats])
    return (f"WITH population AS ({card.population_sql}),\n"
            f"labels AS ({card.label_sql}),\n"
            f"features AS ({card.features.sql})\n"
            f"SELECT {select} FROM population p JOIN labels l ON l.row_id = p.row_id"
            f" JOIN features f ON f.row_id = p.row_id ORDER BY p.row_id")


def _column(data: dict, name: str) -> np.ndarray:
    values = data[name]
    if isinstance(values, np.ma.MaskedArray):
        return values.filled(np.nan) if values.dtype.kind == "f" else values.filled(None)
    return np.asarray(values)


def build_holdout(card: TaskCard, holdout_path: Path) -> HeldOut:
    """Run the task's SQL over a held-out partition. Raises InternalError with a stable code
    when the task's SQL fails or yields unusable labels (a task-card problem, not the team's)."""
    try:
        con = connect_locked(duckdb, str(holdout_path), read_only=True, memory_mb=2048,
                             threads=2)
    except duckdb.Error:
        raise InternalError(code="holdout_unavailable") from None
    try:
        data = con.execute(holdout_sql(card)).fetchnumpy()
    except duckdb.Error:
        raise InternalError(code="task_sql_failed") from None
    finally:
        con.close()
    labels = _column(data, "label").astype(float)
    if labels.size == 0:
        raise InternalError(code="task_population_empty")
    if np.isnan(labels).any() or not np.isin(labels, (0.0, 1.0)).all():
        raise InternalError(code="task_label_invalid")
    features = np.column_stack([_column(data, "feature_" + c.name).astype(np.float64)
                                for c in card.features.columns]).astype(np.float32)
    groups = {g.name: np.asarray(_column(data, "group_" + g.name)).astype(str)
              for g in card.subgroups.groups}
    return HeldOut(np.asarray(data["row_id"]), features, labels, groups)


def shuffle_order(rows: int, seed: int) -> np.ndarray:
    """The permutation applied before scoring; recorded (by its seed) in the report."""
    return np.random.default_rng(seed).permutation(rows)


def synthetic_twin(card: TaskCard, rows: int = TWIN_ROWS, seed: int = 0) -> np.ndarray:
    """A feature matrix with the task's schema and no real rows: generated from the feature
    spec alone (floats standard normal, ints 0..9, bools 0/1)."""
    rng = np.random.default_rng(seed)
    columns = []
    for column in card.features.columns:
        if column.type == "float":
            columns.append(rng.normal(size=rows))
        elif column.type == "int":
            columns.append(rng.integers(0, 10, size=rows).astype(float))
        else:
            columns.append(rng.integers(0, 2, size=rows).astype(float))
    return np.column_stack(columns).astype(np.float32)


def build_dev(card: TaskCard, release) -> HeldOut:
    """The task's features and labels on the release's **dev** partition (what any granted team
    can build for itself), for the platform's reference model; never the held-out rows."""
    return build_holdout(card, release.dev_path)
