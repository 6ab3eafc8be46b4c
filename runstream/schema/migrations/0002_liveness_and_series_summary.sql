-- Additive: nothing in 0001 changes meaning.

-- When ingest last stored a batch for the run (ingest's clock, not the
-- producer's). The liveness sweep turns a Running run NotResponding, then
-- Failed, when this gets too old; it also serves "last activity" listings.
ALTER TABLE runs ADD COLUMN seen_at timestamptz;
CREATE INDEX runs_live ON runs (seen_at) WHERE status IN ('Running', 'NotResponding');

-- A per-series summary kept current by ingest in the same transaction as the
-- points, so listing runs with their latest metrics never scans points.
-- Scalar series only (NULL/0 for list/row/table/image).
--   point_count  points stored
--   last_*       the point with the greatest (time, ordinal) seen so far:
--                its step, time, ordinal and value (value_text for kind str)
--   min_value, max_value   over finite values (NaN and ±Inf skipped)
--   max_step     the greatest step
ALTER TABLE series
    ADD COLUMN point_count  bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_step    bigint,
    ADD COLUMN last_time    double precision,
    ADD COLUMN last_ordinal bigint,
    ADD COLUMN last_value   double precision,
    ADD COLUMN last_text    text,
    ADD COLUMN min_value    double precision,
    ADD COLUMN max_value    double precision,
    ADD COLUMN max_step     bigint;
