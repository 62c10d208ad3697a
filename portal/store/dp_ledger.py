"""The differential-privacy ledger (table ``dp_ledger``, migration 0006): what each team has
spent of its privacy budget on each dataset, and the noisy answers already released.

Spending happens in one store transaction, which holds the store's single write lock (SQLite
``BEGIN IMMEDIATE``; PostgreSQL's advisory lock taken by every writer, see
:func:`portal.store.db.transaction`): the sum of charges is read and the new charge inserted
under that lock, so several portal servers sharing one store can never together spend more than
the budget.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from portal.errors import QuotaExceeded, Rejected
from portal.store.db import transaction, utcnow

# Failures that happen before any row is read: the charge is given back.
REFUNDED_FAILURES = frozenset({"server_busy", "isolation_unavailable", "schema_error"})


@dataclass(frozen=True)
class Spent:
    rho: float
    delta: float
    queries: int


@dataclass(frozen=True)
class Charge:
    """The outcome of :func:`charge`: a new charge (``cached`` None) or the cached answer of
    an identical earlier query (no cost)."""

    cost_rho: float
    cached: dict[str, Any] | None


STALE_PENDING = timedelta(hours=2)  # longer than any tier's time limit


def _stale_before() -> str:
    moment = datetime.now(UTC) - STALE_PENDING
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def spent(conn: Any, team: str, dataset_id: str) -> Spent:
    """What ``team`` has spent on ``dataset_id`` over all its releases (pending included)."""
    row = conn.execute(
        "SELECT coalesce(sum(rho), 0) AS rho, coalesce(sum(delta), 0) AS delta,"
        " count(*) AS n FROM dp_ledger WHERE team = ? AND dataset_id = ?",
        (team, dataset_id)).fetchone()
    return Spent(float(row["rho"]), float(row["delta"]), int(row["n"]))


def epsilon(rho: float, delta: float) -> float:
    """ε of the (ε, δ)-DP statement implied by ρ-zCDP (Bun and Steinke 2016, Prop. 1.3)."""
    if rho <= 0:
        return 0.0
    return rho + 2 * math.sqrt(rho * math.log(1 / delta))


def charge(conn: Any, *, team: str, dataset_id: str, release_version: str, tier: str,
           query_key: str, query_id: str, rho: float, delta: float, budget_rho: float,
           budget_delta: float) -> Charge:
    """Charge one query, or return the cached answer of the identical one.

    Raises QuotaExceeded(``privacy_budget_exhausted``) when the charge would take the team past
    its budget, and Rejected(``query_in_progress``) while the identical query is still running
    (elsewhere). Both happen inside the transaction: nothing is written."""
    with transaction(conn):
        row = conn.execute(
            "SELECT status, answer, created_at FROM dp_ledger WHERE team = ? AND dataset_id = ? AND"
            " query_key = ?", (team, dataset_id, query_key)).fetchone()
        if row is not None:
            if row["status"] == "pending" and row["created_at"] < _stale_before():
                conn.execute(  # its server died mid-query: it stays charged, as a failure
                    "UPDATE dp_ledger SET status = 'failed', answer = ? WHERE team = ? AND"
                    " dataset_id = ? AND query_key = ?",
                    (json.dumps({"failed": "query_error"}), team, dataset_id, query_key))
                return Charge(0.0, {"failed": "query_error"})
            if row["status"] == "pending":
                raise Rejected("query_in_progress", "The same query is running; its answer "
                                                    "will be ready in a moment.")
            return Charge(0.0, json.loads(row["answer"]))
        used = spent(conn, team, dataset_id)
        if used.rho + rho > budget_rho + 1e-12 or used.delta + delta > budget_delta + 1e-18:
            left = max(0.0, budget_rho - used.rho)
            raise QuotaExceeded(
                "privacy_budget_exhausted",
                f"Your team's privacy budget on {dataset_id} is used up: this query costs "
                f"ρ = {rho:g} and ρ = {left:g} of {budget_rho:g} is left. Identical queries "
                f"you already ran still return their answers at no cost.")
        conn.execute(
            "INSERT INTO dp_ledger (team, dataset_id, release_version, tier, query_key,"
            " query_id, rho, delta, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
            " 'pending', ?)",
            (team, dataset_id, release_version, tier, query_key, query_id, rho, delta,
             utcnow()))
    return Charge(rho, None)


def record_answer(conn: Any, team: str, dataset_id: str, query_key: str,
                  answer: dict[str, Any]) -> None:
    """Store the released (noisy) answer, for replay of identical queries."""
    with transaction(conn):
        conn.execute(
            "UPDATE dp_ledger SET status = 'answered', answer = ? WHERE team = ? AND"
            " dataset_id = ? AND query_key = ?",
            (json.dumps(answer, sort_keys=True), team, dataset_id, query_key))


def record_failure(conn: Any, team: str, dataset_id: str, query_key: str, code: str) -> None:
    """A charged query failed. Failures that read no row are refunded (the reservation is
    removed); any other stays charged and replays as the same generic failure."""
    with transaction(conn):
        if code in REFUNDED_FAILURES:
            conn.execute("DELETE FROM dp_ledger WHERE team = ? AND dataset_id = ? AND"
                         " query_key = ? AND status = 'pending'", (team, dataset_id, query_key))
        else:
            conn.execute(
                "UPDATE dp_ledger SET status = 'failed', answer = ? WHERE team = ? AND"
                " dataset_id = ? AND query_key = ?",
                (json.dumps({"failed": code}), team, dataset_id, query_key))


def is_answered(conn: Any, team: str, dataset_id: str, query_key: str) -> bool:
    """Whether the identical query already has an answer (its replay costs nothing)."""
    row = conn.execute("SELECT status FROM dp_ledger WHERE team = ? AND dataset_id = ? AND"
                       " query_key = ?", (team, dataset_id, query_key)).fetchone()
    return row is not None and row["status"] != "pending"
