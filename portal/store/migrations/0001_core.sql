-- Core tables: people, teams and the audit log.
CREATE TABLE teams (
    id          INTEGER PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at  TEXT NOT NULL
);

-- A user is keyed by (issuer, subject) once they have signed in. Until then an invited user has
-- only an e-mail address; the first sign-in with that verified address binds issuer and subject.
CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    issuer      TEXT,
    subject     TEXT,
    email       TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL DEFAULT '',
    role        TEXT NOT NULL CHECK (role IN ('staff', 'member')),
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('invited', 'active', 'suspended', 'removed')),
    created_at  TEXT NOT NULL,
    last_seen_at TEXT,
    UNIQUE (issuer, subject)
);

-- A startup member belongs to exactly one team.
CREATE TABLE memberships (
    user_id     INTEGER NOT NULL UNIQUE REFERENCES users(id),
    team_id     INTEGER NOT NULL REFERENCES teams(id),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, team_id)
);

-- Append-only, hash-chained. Never holds data values: SQL text, references, decisions, counts.
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    team        TEXT,
    action      TEXT NOT NULL,
    target      TEXT,
    decision    TEXT NOT NULL,
    reason      TEXT,
    details     TEXT NOT NULL DEFAULT '{}',
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE
);
CREATE INDEX audit_events_action ON audit_events(action);
CREATE INDEX audit_events_actor ON audit_events(actor);
CREATE INDEX audit_events_at ON audit_events(at);

-- The append-only rule, enforced by the store itself on each engine.
-- portal:sqlite
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
-- portal:end
-- portal:postgresql
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only' USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
-- portal:end
