-- Run pages, leaderboards and model cards.
-- components_file: DeLong's structural components of the run's AUROC on the held-out cases, in
--   canonical case order (a write-once file under the reports folder, platform-only), so the
--   leaderboard can compare two models on the same cases (paired DeLong) without labels,
--   predictions or a second scoring.
-- reference: 1 for a reference model the platform publishes for a task.
ALTER TABLE sandbox_runs ADD COLUMN components_file TEXT;
ALTER TABLE sandbox_runs ADD COLUMN reference INTEGER NOT NULL DEFAULT 0;
-- The startup's narrative for the CHAI Applied Model Card (JSON object of short texts).
ALTER TABLE sandbox_models ADD COLUMN narrative TEXT NOT NULL DEFAULT '{}';
