-- Audit chain 2: every event from here on is chained with HMAC-SHA256 under a per-installation
-- key that never lives in the store (see docs/decisions/0005-keyed-audit-chain.md). Events
-- written before this migration keep chain 1 (plain SHA-256); the first keyed event's MAC covers
-- the last of them, so they cannot be rewritten either without the key.
ALTER TABLE audit_events ADD COLUMN chain INTEGER NOT NULL DEFAULT 1;

-- How far the chain has been verified (a single row, id = 1): pages verify only later events.
CREATE TABLE audit_verified (
    id           INTEGER PRIMARY KEY,
    last_id      INTEGER NOT NULL,
    last_mac     TEXT NOT NULL,
    events       INTEGER NOT NULL,
    verified_at  TEXT NOT NULL
);
