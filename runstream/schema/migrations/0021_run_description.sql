-- Additive: a run's description (Azure ML v1's run.description), set and changed by
-- `run_updated` events like its display name.
ALTER TABLE runs ADD COLUMN description text;
