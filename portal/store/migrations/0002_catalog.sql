-- Datasets and their versioned releases. Release files live under $PORTAL_HOME/releases.
CREATE TABLE datasets (
    id            TEXT PRIMARY KEY,
    title         TEXT NOT NULL,
    manifest_hash TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE releases (
    id            INTEGER PRIMARY KEY,
    dataset_id    TEXT NOT NULL REFERENCES datasets(id),
    version       TEXT NOT NULL,
    directory     TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('current', 'superseded')),
    built_at      TEXT NOT NULL,
    built_by      TEXT NOT NULL,
    manifest_hash TEXT NOT NULL,
    summary       TEXT NOT NULL DEFAULT '{}',
    UNIQUE (dataset_id, version)
);
CREATE UNIQUE INDEX releases_one_current ON releases(dataset_id) WHERE status = 'current';
