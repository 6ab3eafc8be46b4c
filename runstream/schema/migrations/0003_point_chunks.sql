-- Additive: scalar points many to a row, the layout that gets PostgreSQL near
-- 16 bytes per point (a row per point costs ~110). runstream/chunks.py
-- encodes a row (encode_chunk, column order CHUNK_COLUMNS) and decodes it.
--
-- Ingest writes here instead of `points` only when a worker runs with
-- IngestOptions(point_layout="chunks"): one row per series per flush, in the
-- same transaction as everything else. Until readers know this table the
-- default stays "rows" and this table stays empty.
CREATE TABLE point_chunks (
    series_id    bigint NOT NULL,
    time_start   double precision NOT NULL,
    time_end     double precision NOT NULL,
    n            integer NOT NULL,
    ord_start    bigint NOT NULL,
    ords         bytea,
    step_start   bigint NOT NULL,
    step_stride  bigint NOT NULL,
    step_min     bigint NOT NULL,
    step_max     bigint NOT NULL,
    steps        bytea,
    times        bytea NOT NULL,
    value_min    double precision,
    value_max    double precision,
    value_last   double precision,
    vals         bytea,
    texts        text[]
);
CREATE INDEX point_chunks_series ON point_chunks (series_id, step_min);

-- lz4 where the server has it: pglz costs ~10x more CPU on compressible
-- columns (regular time deltas, smooth values) for a similar size.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE point_chunks
            ALTER COLUMN ords SET COMPRESSION lz4,
            ALTER COLUMN steps SET COMPRESSION lz4,
            ALTER COLUMN times SET COMPRESSION lz4,
            ALTER COLUMN vals SET COMPRESSION lz4,
            ALTER COLUMN texts SET COMPRESSION lz4;
    END IF;
END
$$;
