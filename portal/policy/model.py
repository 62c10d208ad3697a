"""The schema of ``access_policies/*.yaml``. Strict: unknown keys and wrong types are errors.

Semantics (resolution lives in ``portal.policy.engine``): default deny — a table or column a
tier does not name is absent; at the same level deny beats allow; a more specific rule (a named
column) beats a less specific one (``"*"``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Budget(_Strict):
    per_minute: int = Field(ge=1, le=10_000)
    per_day: int = Field(ge=1, le=1_000_000)


class RequestRequirements(_Strict):
    """What an access request for this tier must include."""

    purpose_min_chars: int = Field(default=40, ge=1, le=10_000)
    purpose_max_chars: int = Field(default=4000, ge=1, le=100_000)
    terms_required: bool = True
    ethics_reference_required: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> RequestRequirements:
        if self.purpose_min_chars > self.purpose_max_chars:
            raise ValueError("purpose_min_chars is larger than purpose_max_chars")
        return self


class ColumnTransform(_Strict):
    """A further transform this tier applies on top of the release (exactly one kind)."""

    band: int | None = Field(default=None, ge=1, le=1_000_000)  # numbers to bands of this width
    date_to_year: bool | None = None
    truncate_chars: int | None = Field(default=None, ge=1, le=10_000)

    @model_validator(mode="after")
    def _one(self) -> ColumnTransform:
        chosen = [k for k in ("band", "date_to_year", "truncate_chars") if getattr(self, k)]
        if len(chosen) != 1:
            raise ValueError("a transform names exactly one of band, date_to_year, truncate_chars")
        return self


class TableRule(_Strict):
    """Which columns of one table a tier exposes, and the rows (``row_filter``)."""

    allow_columns: list[str] = Field(default_factory=list)  # names, or "*" for all
    deny_columns: list[str] = Field(default_factory=list)  # names, or "*" for all
    row_filter: str | None = Field(default=None, max_length=4000)
    transforms: dict[str, ColumnTransform] = Field(default_factory=dict)
    deny: bool = False  # deny the whole table (beats a "*" table rule)


class DpSettings(_Strict):
    """Differential privacy for an aggregate tier (``disclosure: dp``), in zero-concentrated DP.

    Each query costs ``rho_per_query`` of the team's ``budget_rho`` on the dataset (every release
    of the dataset shares one budget). Partition selection (groups without a public key set)
    spends ``selection_delta`` per query; the whole budget is stated as (ε, ``delta``)-DP.
    Each person contributes at most ``max_rows_per_group`` rows to a group and to at most
    ``max_groups_per_person`` groups of one query. Run time is padded up to a multiple of
    ``time_bucket_seconds``."""

    rho_per_query: float = Field(gt=0, le=10)
    budget_rho: float = Field(gt=0, le=1000)
    delta: float = Field(default=1e-6, gt=0, le=1e-3)
    selection_delta: float = Field(default=1e-9, gt=0, le=1e-5)
    max_rows_per_group: int = Field(default=1, ge=1, le=100)
    max_groups_per_person: int = Field(default=4, ge=1, le=100)
    time_bucket_seconds: float = Field(default=0.5, ge=0, le=60)

    @model_validator(mode="after")
    def _fits(self) -> DpSettings:
        if self.rho_per_query > self.budget_rho:
            raise ValueError("rho_per_query is larger than budget_rho")
        queries = self.budget_rho / self.rho_per_query
        if queries * self.selection_delta > self.delta / 2:
            raise ValueError("selection_delta over the whole budget exceeds half of delta")
        return self


class Tier(_Strict):
    description: str = Field(min_length=1, max_length=2000)
    result_mode: Literal["rows", "aggregate"]
    min_persons: int | None = Field(default=None, ge=2, le=10_000)
    max_rows: int = Field(ge=1, le=1_000_000)
    round_counts_to: int = Field(default=1, ge=1, le=1000)
    # suppression: exact aggregates, small groups suppressed (not safe against differencing);
    # dp: noisy aggregates with a privacy budget (see DpSettings)
    disclosure: Literal["suppression", "dp"] = "suppression"
    dp: DpSettings | None = None
    download: Literal["none", "aggregates", "rows"] = "none"
    time_limit_seconds: float = Field(default=30, gt=0, le=3600)
    budget: Budget
    max_grant_days: int = Field(ge=1, le=3650)
    approvals_required: int = Field(default=1, ge=1, le=3)
    request: RequestRequirements = Field(default_factory=RequestRequirements)
    tables: dict[str, TableRule]  # table name, or "*" for every table

    @model_validator(mode="after")
    def _mode(self) -> Tier:
        if self.result_mode == "aggregate" and self.min_persons is None:
            raise ValueError("an aggregate tier needs min_persons")
        if (self.disclosure == "dp") != (self.dp is not None):
            raise ValueError("disclosure: dp needs a dp block, and a dp block needs "
                             "disclosure: dp")
        if self.disclosure == "dp" and self.result_mode != "aggregate":
            raise ValueError("disclosure: dp needs result_mode: aggregate")
        if self.result_mode == "rows" and self.download == "aggregates":
            raise ValueError("download: aggregates needs result_mode: aggregate")
        return self


class DatasetPolicy(_Strict):
    """One file: the tiers of one dataset."""

    dataset: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    terms: str = Field(min_length=1, max_length=20_000)  # what a requester agrees to
    tiers: dict[str, Tier] = Field(min_length=1)

    @model_validator(mode="after")
    def _names(self) -> DatasetPolicy:
        import re

        for name in self.tiers:
            if not re.fullmatch(r"[a-z][a-z0-9-]{0,63}", name):
                raise ValueError(f"tier name {name!r} must be lowercase letters, digits and -")
        return self
