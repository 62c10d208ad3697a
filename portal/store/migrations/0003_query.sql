-- Governed SQL: one row per query attempt that reached the budget check (for budgets and the
-- browser's history), and saved queries. Result values are never stored.
CREATE TABLE query_runs (
    id            INTEGER PRIMARY KEY,
    query_id      TEXT NOT NULL UNIQUE,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    team          TEXT,
    dataset_id    TEXT NOT NULL,
    tier          TEXT NOT NULL,
    sql_text      TEXT NOT NULL,
    sql_hash      TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('running', 'allowed', 'rejected', 'failed')),
    code          TEXT,
    rows_returned INTEGER NOT NULL DEFAULT 0,
    suppressed    INTEGER NOT NULL DEFAULT 0,
    truncated     INTEGER NOT NULL DEFAULT 0 CHECK (truncated IN (0, 1)),
    duration_ms   REAL,
    started_at    TEXT NOT NULL
);
CREATE INDEX query_runs_user_time ON query_runs(user_id, started_at);

CREATE TABLE saved_queries (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    dataset_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    sql_text    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (user_id, name)
);
