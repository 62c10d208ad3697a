-- Validation sandbox: task versions, uploaded models (by SHA-256), runs and attempts.

-- Every (task, version) the portal has seen, with its protocol hash: a card whose protocol
-- changed without a new version is refused.
CREATE TABLE sandbox_tasks (
    task_id        TEXT NOT NULL,
    version        INTEGER NOT NULL,
    protocol_hash  TEXT NOT NULL,
    card           TEXT NOT NULL,
    registered_at  TEXT NOT NULL,
    PRIMARY KEY (task_id, version)
);

-- Model bytes live under $PORTAL_HOME/models/<sha256[:2]>/<sha256>.onnx; one row per upload
-- with its model card.
CREATE TABLE sandbox_models (
    id             INTEGER PRIMARY KEY,
    sha256         TEXT NOT NULL CHECK (length(sha256) = 64),
    size_bytes     INTEGER NOT NULL,
    team           TEXT NOT NULL,
    uploaded_by    TEXT NOT NULL,
    name           TEXT NOT NULL,
    model_version  TEXT NOT NULL,
    intended_use   TEXT NOT NULL,
    training_data  TEXT NOT NULL,
    producer       TEXT NOT NULL DEFAULT '',
    uploaded_at    TEXT NOT NULL
);
CREATE INDEX sandbox_models_sha ON sandbox_models(sha256);

CREATE TABLE sandbox_runs (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('validation', 'dry_run')),
    task_id          TEXT NOT NULL,
    task_version     INTEGER NOT NULL,
    protocol_hash    TEXT NOT NULL,
    team             TEXT NOT NULL,
    requested_by     TEXT NOT NULL,
    model_id         INTEGER NOT NULL REFERENCES sandbox_models(id),
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'awaiting_review',
                         'completed', 'released', 'withheld', 'failed')),
    outcome          TEXT,
    message          TEXT,
    review_required  INTEGER NOT NULL,
    rerun_of         INTEGER REFERENCES sandbox_runs(id),
    release_version  TEXT,
    shuffle_seed     INTEGER,
    tries            INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at REAL,
    created_at       TEXT NOT NULL,
    day              TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    report_file      TEXT,
    primary_value    REAL,
    reviewed_by      TEXT,
    review_reason    TEXT,
    reviewed_at      TEXT
);
CREATE INDEX sandbox_runs_status ON sandbox_runs(status);
CREATE INDEX sandbox_runs_team_task_day ON sandbox_runs(team, task_id, day);

-- Every submission, accepted or refused at intake: the total-attempts quota counts these.
CREATE TABLE sandbox_attempts (
    id          INTEGER PRIMARY KEY,
    team        TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    day         TEXT NOT NULL,
    accepted    INTEGER NOT NULL,
    code        TEXT,
    run_id      INTEGER REFERENCES sandbox_runs(id),
    at          TEXT NOT NULL
);
CREATE INDEX sandbox_attempts_team_task_day ON sandbox_attempts(team, task_id, day);
