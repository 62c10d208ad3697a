-- Personal access tokens for the HTTP API. The secret itself is never stored: only its keyed
-- hash (HMAC-SHA256 with the installation's `api_token_key` secret). `token_id` is the public
-- part of the token (it appears in the token text, in listings and in audit events).
-- The team is the owner's team when the token was made; a token stops working when its owner
-- moves to another team. `datasets` and `actions` are JSON lists (the token's scopes).
CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY,
    token_id      TEXT NOT NULL UNIQUE,
    secret_hash   TEXT NOT NULL,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    team_id       INTEGER NOT NULL REFERENCES teams(id),
    name          TEXT NOT NULL,
    datasets      TEXT NOT NULL,
    actions       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    revoked_at    TEXT,
    revoked_by    TEXT,
    last_used_at  TEXT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);
