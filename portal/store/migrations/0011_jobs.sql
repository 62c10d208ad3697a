-- The job queue of the embedded (SQLite) deployment: validation runs, sweeps, extract builds
-- and periodic re-validation, claimed by local worker processes with a renewable lease.
-- On PostgreSQL the same jobs go to the job engine's own tables (migration 0012) and this
-- table stays empty.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY,
    task             TEXT NOT NULL,
    args             TEXT NOT NULL DEFAULT '{}',
    status           TEXT NOT NULL CHECK (status IN ('todo', 'doing', 'succeeded', 'failed')),
    dedupe_key       TEXT,
    once_key         TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    run_after        REAL NOT NULL,
    lease_owner      TEXT,
    lease_expires_at REAL,
    created_at       TEXT NOT NULL,
    finished_at      TEXT,
    error            TEXT
);
-- At most one waiting job per dedupe key (like the job engine's queueing lock) ...
CREATE UNIQUE INDEX jobs_one_waiting ON jobs(dedupe_key) WHERE status = 'todo';
-- ... and one job ever per periodic slot.
CREATE UNIQUE INDEX jobs_once ON jobs(once_key);
CREATE INDEX jobs_ready ON jobs(status, run_after);
