-- Saved queries can be shared with the owner's team (read and load; only the owner changes or
-- deletes them). The team is the owner's current membership, not a copy kept here, so a member
-- who leaves a team takes their shared queries with them.
ALTER TABLE saved_queries ADD COLUMN shared INTEGER NOT NULL DEFAULT 0 CHECK (shared IN (0, 1));
CREATE INDEX saved_queries_user ON saved_queries(user_id);
