"""Request and response bodies of the API, as they appear in its OpenAPI document.

Responses that mirror a service's result allow extra fields, so that a field the service adds
later reaches clients without a new API version; the fields named here are the ones clients may
rely on."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Health(BaseModel):
    status: str


class TokenView(BaseModel):
    """A token as its owner sees it (never the secret)."""

    token_id: str
    name: str
    owner: str
    team: str
    datasets: list[str]
    actions: list[str]
    created_at: str
    expires_at: str
    last_used_at: str | None = None
    status: str


class TaskView(_Open):
    id: str
    version: int
    dataset: str
    title: str


class RunView(_Open):
    """A validation run as its team sees it (``portal sandbox status --format json``)."""

    id: int
    kind: str
    task: str
    status: str
    outcome: str | None = None
    message: str | None = None
    release_version: str | None = None
    primary_value: float | None = None
    report_available: bool = False


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(min_length=1, max_length=100, description="dataset id",
                         examples=["eunomia"])
    sql: str = Field(description="one read-only SQL statement (at most 64 KB)",
                     examples=["SELECT count(*) AS persons FROM person"])


class QueryResponse(_Open):
    """The same contract as ``portal query --format json`` (non-finite numbers as null)."""

    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    suppressed: int
    query_id: str
    tier: str
    duration_ms: float
    suppressed_cells: int = 0
    row_suppressed: list[bool] = []
    cell_suppressed: list[list[bool]] = []


class BudgetWindow(BaseModel):
    window: str = Field(description="minute or day")
    used: int
    limit: int
    remaining: int


class Refusal(BaseModel):
    code: str
    message: str


class DatasetBudget(BaseModel):
    dataset: str
    tier: str | None = Field(None, description="the team's granted tier (null: no grant)")
    queries: list[BudgetWindow] = []
    refusal: Refusal | None = Field(None, description="why queries are refused, if they are")
    privacy: dict[str, Any] | None = Field(
        None, description="the differential-privacy budget of the tier where the portal "
                          "keeps one; null otherwise")


class TaskQuota(_Open):
    task: str
    dataset: str
    day: str
    attempts_used: int
    attempts_limit: int
    valid_runs_used: int
    valid_runs_limit: int
    dry_runs_used: int
    dry_runs_limit: int


class BudgetResponse(BaseModel):
    """Budgets and quotas for every dataset the token names (and the tasks on them)."""

    datasets: list[DatasetBudget]
    tasks: list[TaskQuota]
