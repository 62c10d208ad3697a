"""Store queries for the sandbox (tables from migration 0005). Portable SQL: no SQLite-only
constructs beyond what PostgreSQL also accepts, so workers can later share a server store."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from typing import Any

from portal.errors import ConfigError, NotFound
from portal.store.db import transaction, utcnow
from sandbox.states import check_transition
from sandbox.tasks import TaskCard

MAX_TRIES = 2


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def register_task(conn: sqlite3.Connection, card: TaskCard) -> bool:
    """Record (id, version, protocol hash). Returns True when new. Raises ConfigError
    (code='task_protocol_changed') when the version exists with another protocol."""
    row = conn.execute("SELECT protocol_hash FROM sandbox_tasks WHERE task_id = ? AND version = ?",
                       (card.id, card.version)).fetchone()
    if row is not None:
        if row["protocol_hash"] != card.protocol_hash:
            raise ConfigError(code="task_protocol_changed", problems=[
                f"task {card.id}: the protocol changed but the version is still "
                f"{card.version}; give the card a new version"])
        return False
    conn.execute("INSERT INTO sandbox_tasks (task_id, version, protocol_hash, card, registered_at)"
                 " VALUES (?, ?, ?, ?, ?)", (card.id, card.version, card.protocol_hash,
                                             json.dumps(card.model_dump(mode="json")), utcnow()))
    return True


def task_version(conn: sqlite3.Connection, task_id: str, version: int) -> TaskCard:
    row = conn.execute("SELECT card FROM sandbox_tasks WHERE task_id = ? AND version = ?",
                       (task_id, version)).fetchone()
    if row is None:
        raise NotFound("task_not_found", "There is no such validation task.")
    return TaskCard.model_validate_json(row["card"], strict=False)


def insert_model(conn: sqlite3.Connection, **fields: Any) -> int:
    fields.setdefault("uploaded_at", utcnow())
    names = ", ".join(fields)
    marks = ", ".join("?" for _ in fields)
    cur = conn.execute(f"INSERT INTO sandbox_models ({names}) VALUES ({marks}) RETURNING id",
                       tuple(fields.values()))
    return int(cur.fetchone()[0])


def insert_run(conn: sqlite3.Connection, *, kind: str, card: TaskCard, team: str,
               requested_by: str, model_id: int, rerun_of: int | None = None,
               final: bool = False) -> int:
    """Queue a run (``final``: its team-visible report will be the full released one)."""
    cur = conn.execute(
        "INSERT INTO sandbox_runs (kind, task_id, task_version, protocol_hash, team, requested_by,"
        " model_id, status, review_required, rerun_of, shuffle_seed, created_at, day,"
        " final_report)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?) RETURNING id",
        (kind, card.id, card.version, card.protocol_hash, team, requested_by, model_id,
         int(card.review_required and kind == "validation"), rerun_of, card.shuffle_seed,
         utcnow(), today(), int(final and kind == "validation")))
    run_id = int(cur.fetchone()[0])
    if kind == "validation":  # dry runs are executed at once by the server that took them
        from portal import jobs

        jobs.defer(conn, "validation.run", key=f"run:{run_id}", run_id=run_id)
    return run_id


def insert_attempt(conn: sqlite3.Connection, *, team: str, task_id: str, kind: str,
                   accepted: bool, code: str | None, run_id: int | None) -> None:
    conn.execute("INSERT INTO sandbox_attempts (team, task_id, kind, day, accepted, code, run_id,"
                 " at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 (team, task_id, kind, today(), int(accepted), code, run_id, utcnow()))


def usage(conn: sqlite3.Connection, team: str, task_id: str, day: str | None = None
          ) -> dict[str, int]:
    """Today's counts for a team on a task: attempts (every validation submission), valid runs
    (accepted at intake and not failed for a platform reason) and dry runs."""
    day = day or today()
    attempts = conn.execute(
        "SELECT count(*) FROM sandbox_attempts WHERE team = ? AND task_id = ? AND day = ?"
        " AND kind = 'validation'", (team, task_id, day)).fetchone()[0]
    valid = conn.execute(
        "SELECT count(*) FROM sandbox_runs WHERE team = ? AND task_id = ? AND day = ?"
        " AND kind = 'validation' AND rerun_of IS NULL"
        " AND NOT (status = 'failed' AND outcome IN ('internal_error', 'isolation_unavailable'))",
        (team, task_id, day)).fetchone()[0]
    dry = conn.execute(
        "SELECT count(*) FROM sandbox_attempts WHERE team = ? AND task_id = ? AND day = ?"
        " AND kind = 'dry_run'", (team, task_id, day)).fetchone()[0]
    return {"attempts": int(attempts), "valid_runs": int(valid), "dry_runs": int(dry)}


def final_reports_used(conn: sqlite3.Connection, team: str, task_id: str,
                       task_version: int) -> int:
    """Final submissions a team has made on a task version (queued, running or finished;
    failed runs produced no report and do not count)."""
    return int(conn.execute(
        "SELECT count(*) FROM sandbox_runs WHERE team = ? AND task_id = ? AND task_version = ?"
        " AND kind = 'validation' AND final_report = 1 AND status <> 'failed'",
        (team, task_id, int(task_version))).fetchone()[0])


def earlier_final_reports(conn: sqlite3.Connection, team: str, task_id: str,
                          task_version: int, before_id: int) -> list[sqlite3.Row]:
    """The team's earlier final validations on a task version that have an exact report."""
    return conn.execute(
        "SELECT id, report_file FROM sandbox_runs WHERE team = ? AND task_id = ?"
        " AND task_version = ? AND kind = 'validation' AND final_report = 1"
        " AND report_file IS NOT NULL AND id < ? ORDER BY id",
        (team, task_id, int(task_version), int(before_id))).fetchall()


def ladder(conn: sqlite3.Connection, team: str, task_id: str,
           task_version: int) -> sqlite3.Row | None:
    """The team's Ladder on a task version (best value, submissions, updates), or None."""
    return conn.execute(
        "SELECT * FROM sandbox_ladder WHERE team = ? AND task_id = ? AND task_version = ?",
        (team, task_id, int(task_version))).fetchone()


def ladder_submit(conn: sqlite3.Connection, *, team: str, task_id: str, task_version: int,
                  metric: str, value: float | None, run_id: int, margin: float,
                  step: float) -> dict[str, Any]:
    """Put one submission's exact primary value through the team's Ladder and store the new
    state. Call inside the write transaction that makes the report visible. Returns
    ``best``, ``improved``, ``submissions``, ``updates``, ``margin``."""
    from sandbox.disclosure import ladder_step

    row = ladder(conn, team, task_id, task_version)
    previous = row["best_value"] if row is not None else None
    best, improved = ladder_step(previous, value, metric, margin, step)
    submissions = (row["submissions"] if row is not None else 0) + 1
    updates = (row["updates"] if row is not None else 0) + int(improved)
    best_run = run_id if improved else (row["best_run_id"] if row is not None else None)
    if row is None:
        conn.execute(
            "INSERT INTO sandbox_ladder (team, task_id, task_version, metric, best_value,"
            " best_run_id, submissions, updates, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (team, task_id, int(task_version), metric, best, best_run, submissions, updates,
             utcnow()))
    else:
        conn.execute(
            "UPDATE sandbox_ladder SET best_value = ?, best_run_id = ?, submissions = ?,"
            " updates = ?, updated_at = ? WHERE team = ? AND task_id = ? AND task_version = ?",
            (best, best_run, submissions, updates, utcnow(), team, task_id, int(task_version)))
    return {"metric": metric, "best": best, "improved": improved, "submissions": submissions,
            "updates": updates, "margin": max(margin, step)}


def get_run(conn: sqlite3.Connection, run_id: int) -> sqlite3.Row:
    row = conn.execute(
        "SELECT r.*, m.sha256, m.name AS model_name, m.model_version, m.intended_use,"
        " m.training_data, m.size_bytes FROM sandbox_runs r"
        " JOIN sandbox_models m ON m.id = r.model_id WHERE r.id = ?", (int(run_id),)).fetchone()
    if row is None:
        raise NotFound("run_not_found", "There is no such validation run.")
    return row


def list_runs(conn: sqlite3.Connection, *, team: str | None = None, status: str | None = None,
              task_id: str | None = None, limit: int = 200) -> list[sqlite3.Row]:
    clauses, params = [], []
    for column, value in (("r.team", team), ("r.status", status), ("r.task_id", task_id)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return conn.execute(
        "SELECT r.*, m.sha256, m.name AS model_name, m.model_version FROM sandbox_runs r"
        f" JOIN sandbox_models m ON m.id = r.model_id {where} ORDER BY r.id DESC LIMIT ?",
        (*params, int(limit))).fetchall()


def set_status(conn: sqlite3.Connection, run_id: int, new: str, **fields: Any) -> None:
    """Move a run to ``new`` (checked against the transition table) and set ``fields``."""
    row = conn.execute("SELECT status FROM sandbox_runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise NotFound("run_not_found", "There is no such validation run.")
    check_transition(row["status"], new)
    assignments = ", ".join(["status = ?", *[f"{k} = ?" for k in fields]])
    conn.execute(f"UPDATE sandbox_runs SET {assignments} WHERE id = ?",
                 (new, *fields.values(), run_id))


def requeue_expired(conn: sqlite3.Connection, owner: str) -> tuple[list[int], list[int]]:
    """Runs whose lease expired (their worker died or lost the store) go back to the queue
    with a new job, or fail once tried :data:`MAX_TRIES` times (audited ``sandbox.run.lost``).
    Joins the caller's transaction. Returns (requeued ids, failed ids)."""
    from portal import audit, jobs

    requeued: list[int] = []
    failed: list[int] = []
    with _write_scope(conn):
        expired = conn.execute(
            "SELECT id, tries, kind FROM sandbox_runs WHERE status = 'running'"
            " AND lease_expires_at < ? ORDER BY id", (time.time(),)).fetchall()
        for row in expired:
            if row["tries"] >= MAX_TRIES:
                set_status(conn, row["id"], "failed", outcome="internal_error",
                           message="The run was interrupted repeatedly; staff have been told.",
                           finished_at=utcnow(), lease_owner=None, lease_expires_at=None)
                audit.record(conn, actor=f"worker:{owner}", action="sandbox.run.lost",
                             target=f"run:{row['id']}", decision="failed",
                             reason="lease_expired")
                failed.append(int(row["id"]))
                continue
            set_status(conn, row["id"], "queued", lease_owner=None, lease_expires_at=None)
            requeued.append(int(row["id"]))
            if row["kind"] == "validation":
                jobs.defer(conn, "validation.run", key=f"run:{row['id']}", run_id=row["id"])
    return requeued, failed


def _write_scope(conn: sqlite3.Connection):
    from contextlib import nullcontext

    return nullcontext(conn) if conn.in_transaction else transaction(conn)


def claim(conn: sqlite3.Connection, owner: str, lease_seconds: float,
          kinds: tuple[str, ...] = ("validation", "dry_run"),
          only_id: int | None = None) -> tuple[int | None, list[int]]:
    """Atomically claim the oldest claimable run (``only_id``: that run only) for ``owner``.

    Inside one write transaction: expired leases are dealt with (:func:`requeue_expired`),
    then the oldest queued run is marked running with a lease of ``lease_seconds``. Returns
    (claimed run id or None, ids failed for lost workers)."""
    marks = ", ".join("?" for _ in kinds)
    with transaction(conn):
        _, failed = requeue_expired(conn, owner)
        only = " AND id = ?" if only_id is not None else ""
        params = (*kinds, only_id) if only_id is not None else kinds
        row = conn.execute(
            f"SELECT id FROM sandbox_runs WHERE status = 'queued' AND kind IN ({marks}){only}"
            " ORDER BY id LIMIT 1", params).fetchone()
        if row is None:
            return None, failed
        updated = conn.execute(
            "UPDATE sandbox_runs SET status = 'running', lease_owner = ?, lease_expires_at = ?,"
            " tries = tries + 1, started_at = ? WHERE id = ? AND status = 'queued'",
            (owner, time.time() + lease_seconds, utcnow(), row["id"])).rowcount
        return (int(row["id"]) if updated == 1 else None), failed


def extend_lease(conn: sqlite3.Connection, run_id: int, owner: str, seconds: float) -> bool:
    """Renew ``owner``'s lease on a running run; False when the lease is no longer theirs."""
    with transaction(conn):
        return conn.execute(
            "UPDATE sandbox_runs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?"
            " AND status = 'running'", (time.time() + seconds, run_id, owner)).rowcount == 1


def queued_run_ids(conn: sqlite3.Connection, kinds: tuple[str, ...]) -> list[int]:
    marks = ", ".join("?" for _ in kinds)
    return [int(r["id"]) for r in conn.execute(
        f"SELECT id FROM sandbox_runs WHERE status = 'queued' AND kind IN ({marks})"
        " ORDER BY id", kinds).fetchall()]


def stale_latest_runs(conn: sqlite3.Connection, task_id: str,
                      release_version: str) -> list[sqlite3.Row]:
    """Each team's latest released or completed validation run on the task whose release is
    not ``release_version``, for teams with no run waiting or running on the task."""
    return conn.execute(
        "SELECT r.id, r.team, r.model_id FROM sandbox_runs r"
        " WHERE r.id IN (SELECT max(id) FROM sandbox_runs WHERE task_id = ?"
        "   AND kind = 'validation' AND status IN ('released', 'completed') GROUP BY team)"
        " AND (r.release_version IS NULL OR r.release_version <> ?)"
        " AND NOT EXISTS (SELECT 1 FROM sandbox_runs w WHERE w.task_id = r.task_id"
        "   AND w.team = r.team AND w.status IN ('queued', 'running'))"
        " ORDER BY r.team", (task_id, release_version)).fetchall()


def owns(conn: sqlite3.Connection, run_id: int, owner: str) -> bool:
    row = conn.execute("SELECT status, lease_owner FROM sandbox_runs WHERE id = ?",
                       (run_id,)).fetchone()
    return row is not None and row["status"] == "running" and row["lease_owner"] == owner
