"""Validation task cards: the strict model, the loader and the protocol hash.

A task card (``sandbox/tasks/*.yaml``) states the clinical question and everything that decides
a validation's figures — the *protocol*: dataset, population, label and feature SQL, the input
the model must accept, metrics, thresholds and subgroups. The protocol is hashed (SHA-256 of its
canonical JSON); the hash is printed on every report, and the store refuses a changed protocol
under an unchanged version (see ``portal.services.sandbox.sync_tasks``).

SQL in a card is trusted platform code (reviewed like code) and runs only over a release's
held-out partition, in the parent. It uses three named parts, joined on ``row_id``:

- ``population``: one row per case, ``row_id`` plus any subgroup columns;
- ``labels``: ``row_id, label`` (0/1), may read ``population``;
- ``features``: ``row_id`` and the feature columns in the card's order, may read ``population``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from portal.canonical import canonical_bytes
from portal.errors import ConfigError
from portal.yamlstrict import load_strict

_ID = r"^[a-z][a-z0-9_-]{1,62}$"
_IDENT = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
METRICS = ("auroc", "auprc", "brier", "calibration", "thresholds", "net_benefit")
PROTOCOL_FIELDS = ("id", "dataset", "population_sql", "label_sql", "features", "input",
                   "metrics", "primary_metric", "thresholds", "subgroups", "shuffle_seed")


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class FeatureColumn(_Strict):
    name: str = Field(pattern=_IDENT)
    type: Literal["float", "int", "bool"]
    description: str = Field(default="", max_length=500)


class FeatureSpec(_Strict):
    sql: str = Field(min_length=10, max_length=20_000)
    columns: list[FeatureColumn] = Field(min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _unique(self) -> FeatureSpec:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names) or "row_id" in names:
            raise ValueError("feature names must be unique and may not be row_id")
        return self


class InputTensor(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,62}$")
    dtype: Literal["float32"] = "float32"


class Subgroup(_Strict):
    name: str = Field(pattern=_IDENT)
    column: str = Field(pattern=_IDENT)  # a column of ``population``


class Subgroups(_Strict):
    min_size: int = Field(ge=5, le=100_000)
    groups: list[Subgroup] = Field(default_factory=list, max_length=20)


class Quotas(_Strict):
    valid_runs_per_day: int = Field(ge=1, le=1000)
    attempts_per_day: int = Field(ge=1, le=10_000)
    dry_runs_per_day: int = Field(default=50, ge=1, le=10_000)


class Limits(_Strict):
    wall_seconds: float = Field(gt=0, le=3600)
    memory_mb: int = Field(ge=1024, le=65_536)
    max_model_mb: int = Field(default=100, ge=1, le=200)


class PublicCopy(_Strict):
    """A public copy of the source data: where it is and how it overlaps the held-out set."""

    name: str = Field(min_length=3, max_length=200)
    where: str = Field(min_length=3, max_length=300)
    overlap: Literal["contains_holdout", "partial", "none_known"]
    note: str = Field(default="", max_length=1000)


class Disclosure(_Strict):
    """How much of a validation a team sees (``sandbox.disclosure``; not part of the protocol:
    it decides what is shown, not what is computed).

    ``final_reports``: full released reports per team per task version (Kaggle's final
    selections); every other submission shows only the Ladder's primary metric.
    ``min_cell``: the minimum positives and negatives behind any released count (default: the
    subgroup minimum size). ``ladder_margin``: how much a submission must beat the team's best
    to change it (default: the grid step of the held-out set, about one standard error)."""

    final_reports: int = Field(default=2, ge=0, le=100)
    min_cell: int | None = Field(default=None, ge=5, le=100_000)
    ladder_margin: float | None = Field(default=None, gt=0, le=0.5)


class TaskCard(_Strict):
    id: str = Field(pattern=_ID)
    version: int = Field(ge=1, le=1_000_000)
    dataset: str = Field(pattern=_ID)
    title: str = Field(min_length=3, max_length=200)
    question: str = Field(min_length=10, max_length=4000)
    population_sql: str = Field(min_length=10, max_length=20_000)
    label_sql: str = Field(min_length=10, max_length=20_000)
    features: FeatureSpec
    input: InputTensor
    metrics: list[Literal[METRICS]] = Field(min_length=1)  # type: ignore[valid-type]
    primary_metric: Literal["auroc", "auprc", "brier"]
    thresholds: list[float] = Field(min_length=1, max_length=20)
    subgroups: Subgroups
    quotas: Quotas
    limits: Limits
    review_required: bool
    grant_required: bool
    shuffle_seed: int = Field(default=20261128, ge=0, le=2**32 - 1)
    # Descriptive (not protocol): what a label of 1 means, the outcome window the question and
    # the label SQL share, and public copies of the source data that overlap the held-out set.
    label_meaning: str = Field(default="", max_length=2000)
    outcome_window_days: int | None = Field(default=None, ge=1, le=36_500)
    public_copies: list[PublicCopy] = Field(default_factory=list, max_length=20)
    disclosure: Disclosure = Field(default_factory=Disclosure)

    @model_validator(mode="after")
    def _consistent(self) -> TaskCard:
        if any(not 0 < t < 1 for t in self.thresholds):
            raise ValueError("thresholds must lie strictly between 0 and 1")
        if self.primary_metric not in self.metrics:
            raise ValueError("primary_metric must be one of the listed metrics")
        if self.outcome_window_days is not None:
            problem = window_disagreement(self)
            if problem:
                raise ValueError(problem)
        return self

    @property
    def width(self) -> int:
        return len(self.features.columns)

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.features.columns]

    def protocol(self) -> dict:
        data = self.model_dump(mode="json")
        return {name: data[name] for name in PROTOCOL_FIELDS}

    @property
    def protocol_hash(self) -> str:
        return protocol_hash(self)

    @property
    def min_cell(self) -> int:
        return self.disclosure.min_cell or self.subgroups.min_size

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"


_INTERVAL_DAYS = re.compile(r"INTERVAL\s+'?(\d+)'?\s+DAYS?", re.IGNORECASE)
_QUESTION_DAYS = re.compile(r"(\d[\d,]*)\s+days", re.IGNORECASE)


def window_disagreement(card: TaskCard) -> str | None:
    """Why the card's question and label SQL disagree on the outcome window, or None.

    Every ``INTERVAL n DAY`` of the label SQL and every "n days" of the question must equal
    ``outcome_window_days``, and each must state it at least once."""
    window = card.outcome_window_days
    in_sql = {int(n) for n in _INTERVAL_DAYS.findall(card.label_sql)}
    in_question = {int(n.replace(",", "")) for n in _QUESTION_DAYS.findall(card.question)}
    if in_sql != {window}:
        return (f"outcome_window_days is {window} but the label SQL uses "
                f"{sorted(in_sql) or 'no'} day intervals")
    if in_question != {window}:
        return (f"outcome_window_days is {window} but the question states "
                f"{sorted(in_question) or 'no'} days")
    return None


def canonical_json(data: object) -> bytes:
    return canonical_bytes(data, allow_nan=True)  # as protocol hashes were always computed


def protocol_hash(card: TaskCard) -> str:
    """SHA-256 of the canonical JSON of the card's protocol fields."""
    return hashlib.sha256(canonical_json(card.protocol())).hexdigest()


def load_card(source: Path | str | bytes, name: str | None = None) -> TaskCard:
    """Load one card strictly. Raises ConfigError with file:line problems."""
    card, _ = load_strict(source, TaskCard, name=name)
    return card


def load_cards(folder: Path) -> dict[str, TaskCard]:
    """Every ``*.yaml`` card in ``folder``, by id. Raises ConfigError on any bad card or a
    duplicate id (all problems reported together)."""
    cards: dict[str, TaskCard] = {}
    problems: list[str] = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            card = load_card(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if card.id in cards:
            problems.append(f"{path.name}: duplicate task id {card.id!r}")
        cards[card.id] = card
    if problems:
        raise ConfigError(problems=problems)
    return cards

