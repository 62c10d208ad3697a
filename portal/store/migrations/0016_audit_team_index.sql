-- The Audit page lists the teams that appear in the log (a picker) and filters by team:
-- an index on team makes both index reads, like actor and action already are.
CREATE INDEX audit_events_team ON audit_events(team);
