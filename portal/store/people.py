"""Queries for teams, users and memberships."""

from __future__ import annotations

import sqlite3

from portal.store.db import utcnow


def get_team(conn: sqlite3.Connection, slug: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM teams WHERE slug = ?", (slug,)).fetchone()


def ensure_team(conn: sqlite3.Connection, slug: str, name: str) -> int:
    row = get_team(conn, slug)
    if row:
        return int(row["id"])
    cur = conn.execute("INSERT INTO teams (slug, name, created_at) VALUES (?, ?, ?)"
                       " RETURNING id", (slug, name, utcnow()))
    return int(cur.fetchone()[0])


def list_teams(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM teams ORDER BY slug").fetchall()


def get_user_by_email(conn: sqlite3.Connection, email: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM users WHERE email = ?", (email.strip().lower(),)).fetchone()


def get_user_by_identity(conn: sqlite3.Connection, issuer: str, subject: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM users WHERE issuer = ? AND subject = ?",
                        (issuer, subject)).fetchone()


def ensure_user(conn: sqlite3.Connection, *, email: str, role: str, name: str = "",
                status: str = "active", issuer: str | None = None,
                subject: str | None = None) -> int:
    email = email.strip().lower()
    row = get_user_by_email(conn, email)
    if row:
        return int(row["id"])
    cur = conn.execute(
        "INSERT INTO users (issuer, subject, email, name, role, status, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (issuer, subject, email, name, role, status, utcnow()),
    )
    return int(cur.fetchone()[0])


def set_membership(conn: sqlite3.Connection, user_id: int, team_id: int) -> None:
    conn.execute(
        "INSERT INTO memberships (user_id, team_id, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT(user_id) DO UPDATE SET team_id = excluded.team_id",
        (user_id, team_id, utcnow()),
    )


def team_of_user(conn: sqlite3.Connection, user_id: int) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT t.* FROM teams t JOIN memberships m ON m.team_id = t.id WHERE m.user_id = ?",
        (user_id,),
    ).fetchone()


def team_members(conn: sqlite3.Connection, team_id: int) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT u.* FROM users u JOIN memberships m ON m.user_id = u.id WHERE m.team_id = ?"
        " ORDER BY u.email", (team_id,),
    ).fetchall()


def bind_identity(conn: sqlite3.Connection, user_id: int, issuer: str, subject: str) -> None:
    """Link a user row to its (issuer, subject); an invited user becomes active."""
    conn.execute(
        "UPDATE users SET issuer = ?, subject = ?,"
        " status = CASE status WHEN 'invited' THEN 'active' ELSE status END WHERE id = ?",
        (issuer, subject, user_id),
    )


def touch_last_seen(conn: sqlite3.Connection, user_id: int) -> None:
    conn.execute("UPDATE users SET last_seen_at = ? WHERE id = ?", (utcnow(), user_id))
