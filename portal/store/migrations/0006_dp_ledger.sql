-- Differential-privacy ledger for `disclosure: dp` tiers: one row per charged measurement.
-- The budget is per team per dataset lineage (every release of a dataset shares it, because
-- releases share persons), so `release_version` is recorded but not part of the budget.
-- `query_key` is the canonical hash of the verified rewrite, tier spec and DP parameters on one
-- release: an identical query on the same release replays `answer` (the noisy result already
-- released, never an exact value) at no cost. `status`: pending while the query runs,
-- answered, or failed (a failure stays charged: whether a query fails is itself an answer).
CREATE TABLE dp_ledger (
    id              INTEGER PRIMARY KEY,
    team            TEXT NOT NULL,
    dataset_id      TEXT NOT NULL,
    release_version TEXT NOT NULL,
    tier            TEXT NOT NULL,
    query_key       TEXT NOT NULL,
    query_id        TEXT NOT NULL,
    rho             REAL NOT NULL CHECK (rho >= 0),
    delta           REAL NOT NULL CHECK (delta >= 0),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'answered', 'failed')),
    answer          TEXT,
    created_at      TEXT NOT NULL,
    UNIQUE (team, dataset_id, query_key)
);
CREATE INDEX dp_ledger_team_dataset ON dp_ledger(team, dataset_id);
