-- Validation reports a team may see (sandbox/disclosure.py, docs/decisions/0010).

-- The Ladder: per team and task version, the team-visible best primary metric. It changes only
-- when a submission whose report becomes visible beats it by the card's margin.
CREATE TABLE sandbox_ladder (
    team           TEXT NOT NULL,
    task_id        TEXT NOT NULL,
    task_version   INTEGER NOT NULL,
    metric         TEXT NOT NULL,
    best_value     REAL,
    best_run_id    INTEGER REFERENCES sandbox_runs(id),
    submissions    INTEGER NOT NULL DEFAULT 0,
    updates        INTEGER NOT NULL DEFAULT 0,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (team, task_id, task_version)
);

-- A "final" submission gets the full released report (a limited number per team and task
-- version, set in the task card); others get the Ladder's primary metric only.
ALTER TABLE sandbox_runs ADD COLUMN final_report INTEGER NOT NULL DEFAULT 0;
-- The team-visible report (its JSON file under the reports folder) and primary figure; the
-- exact ones stay in report_file and primary_value, for staff.
ALTER TABLE sandbox_runs ADD COLUMN released_file TEXT;
ALTER TABLE sandbox_runs ADD COLUMN released_primary REAL;
-- The singling-out check of the run's scores (JSON: flagged, reasons, signals) and its flag.
ALTER TABLE sandbox_runs ADD COLUMN singling_out TEXT;
ALTER TABLE sandbox_runs ADD COLUMN flagged INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sandbox_runs_team_task_final ON sandbox_runs(team, task_id, task_version,
    final_report);
