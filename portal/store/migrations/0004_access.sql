-- Access workflow: requests, their reviews, and the grants they produce.
-- Teams and users are referenced by id. Datasets are referenced by their id as text: a grant may
-- exist (e.g. in the demo seed) before the dataset's first release is registered, and the tiers
-- it names are validated against access_policies/ by the code that writes them.

CREATE TABLE access_requests (
    id                 INTEGER PRIMARY KEY,
    team_id            INTEGER NOT NULL REFERENCES teams(id),
    requested_by       INTEGER NOT NULL REFERENCES users(id),
    dataset_id         TEXT NOT NULL,
    tier               TEXT NOT NULL,
    purpose            TEXT NOT NULL,
    agreed_terms       INTEGER NOT NULL DEFAULT 0 CHECK (agreed_terms IN (0, 1)),
    terms_hash         TEXT,
    ethics_reference   TEXT,
    approvals_required INTEGER NOT NULL DEFAULT 1 CHECK (approvals_required BETWEEN 1 AND 3),
    status             TEXT NOT NULL CHECK (status IN
                           ('submitted', 'awaiting_second_approval', 'approved', 'denied',
                            'withdrawn')),
    decision_reason    TEXT,
    grant_id           INTEGER,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
-- A team has at most one open request per dataset and tier.
CREATE UNIQUE INDEX access_requests_one_open ON access_requests(team_id, dataset_id, tier)
    WHERE status IN ('submitted', 'awaiting_second_approval');
CREATE INDEX access_requests_status ON access_requests(status);

-- One row per staff decision on a request. A reviewer decides a request at most once, so the
-- same person can never give both of two required approvals.
CREATE TABLE request_reviews (
    id          INTEGER PRIMARY KEY,
    request_id  INTEGER NOT NULL REFERENCES access_requests(id),
    reviewer_id INTEGER NOT NULL REFERENCES users(id),
    decision    TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
    tier        TEXT,
    days        INTEGER,
    conditions  TEXT NOT NULL DEFAULT '',
    reason      TEXT,
    created_at  TEXT NOT NULL,
    UNIQUE (request_id, reviewer_id)
);

CREATE TABLE grants (
    id             INTEGER PRIMARY KEY,
    team_id        INTEGER NOT NULL REFERENCES teams(id),
    dataset_id     TEXT NOT NULL,
    tier           TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    conditions     TEXT NOT NULL DEFAULT '',
    request_id     INTEGER REFERENCES access_requests(id),
    approved_by    INTEGER NOT NULL REFERENCES users(id),
    starts_at      TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('active', 'expired', 'revoked')),
    revoked_reason TEXT,
    revoked_by     INTEGER REFERENCES users(id),
    revoked_at     TEXT,
    superseded_by  INTEGER REFERENCES grants(id),
    created_at     TEXT NOT NULL,
    CHECK (expires_at > starts_at)
);
-- At most one active grant per team and dataset: a new grant supersedes (revokes) the old one.
CREATE UNIQUE INDEX grants_one_active ON grants(team_id, dataset_id) WHERE status = 'active';
CREATE INDEX grants_team_dataset ON grants(team_id, dataset_id);
