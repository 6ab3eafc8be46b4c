-- Points live only in point_chunks (docs/storage-layout.md chose it by
-- measurement), now partitioned by the UTC day ingest stored them
-- (stored_day, days since 1970-01-01) so that retention drops whole
-- partitions instead of deleting rows. The day is ingest's, not the
-- producer's clock: a skewed or bogus producer clock cannot scatter points
-- over partitions. Rows of the old row-per-point table `points` and of 0003's
-- unpartitioned point_chunks are moved over, then those tables are dropped.
--
-- In every chunk, time_start is the least time and time_end the greatest
-- (readers rely on it to skip chunks; 0003 stored the first time, which
-- differed only when times went backwards inside a chunk).

-- first_time: the least time of the series' points. first_day, last_day: the
-- stored_day range of its chunks, which bounds the partitions a read of the
-- series visits. All NULL before the series' first point.
ALTER TABLE series
    ADD COLUMN first_time double precision,
    ADD COLUMN first_day  integer,
    ADD COLUMN last_day   integer;

ALTER TABLE point_chunks RENAME TO point_chunks_0003;
ALTER INDEX point_chunks_series RENAME TO point_chunks_0003_series;

-- The same columns as 0003's table, plus the partition key.
CREATE TABLE point_chunks (LIKE point_chunks_0003, stored_day integer NOT NULL) PARTITION BY RANGE (stored_day);
CREATE INDEX point_chunks_series ON point_chunks (series_id, time_start);

-- The one definition of a day's partition, used by ingest before it writes a
-- chunk of a new day (and below). Serialised by an advisory lock so that
-- workers racing for the same new day do not collide.
CREATE FUNCTION runstream_point_partition(day integer) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    part text := 'point_chunks_' || to_char(date '1970-01-01' + day, 'YYYYMMDD');
BEGIN
    PERFORM pg_advisory_xact_lock(1920298612);  -- any fixed key shared by every caller
    IF to_regclass(part) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF point_chunks FOR VALUES FROM (%s) TO (%s)',
                       part, day, day + 1);
        -- lz4 where the server has it: pglz costs ~10x more CPU on these
        -- compressible columns for a similar size.
        IF EXISTS (SELECT 1 FROM pg_settings
                   WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
            EXECUTE format('ALTER TABLE %I ALTER COLUMN ords SET COMPRESSION lz4,'
                           ' ALTER COLUMN steps SET COMPRESSION lz4, ALTER COLUMN times SET COMPRESSION lz4,'
                           ' ALTER COLUMN vals SET COMPRESSION lz4, ALTER COLUMN texts SET COMPRESSION lz4', part);
        END IF;
    END IF;
    RETURN part;
END
$$;

-- Little-endian bytes of a float8 / int8 (float8send and int8send are big-endian).
CREATE FUNCTION pg_temp.le8(b bytea) RETURNS bytea IMMUTABLE LANGUAGE sql AS $$
    SELECT substr(b, 8, 1) || substr(b, 7, 1) || substr(b, 6, 1) || substr(b, 5, 1)
        || substr(b, 4, 1) || substr(b, 3, 1) || substr(b, 2, 1) || substr(b, 1, 1)
$$;

-- Rows stored before this migration count as stored on the day of their time.
SELECT runstream_point_partition(d)
FROM (SELECT DISTINCT floor(time / 86400)::integer AS d FROM points
      UNION SELECT DISTINCT floor(time_start / 86400)::integer FROM point_chunks_0003) days;

INSERT INTO point_chunks SELECT *, floor(time_start / 86400)::integer FROM point_chunks_0003;

-- Old rows become chunks of up to 10,000 points in (time, ordinal) order, with
-- every column stored explicitly (no step or ordinal progression, absolute
-- float64 times), which decode_chunk reads like any other chunk.
INSERT INTO point_chunks
SELECT q.series_id, min(q.time), max(q.time), count(*)::int,
       (array_agg(q.ordinal ORDER BY q.time, q.ordinal))[1],
       string_agg(pg_temp.le8(int8send(q.ordinal)), ''::bytea ORDER BY q.time, q.ordinal),
       (array_agg(q.step ORDER BY q.time, q.ordinal))[1], 0, min(q.step), max(q.step),
       string_agg(pg_temp.le8(int8send(q.step)), ''::bytea ORDER BY q.time, q.ordinal),
       string_agg(pg_temp.le8(float8send(q.time)), ''::bytea ORDER BY q.time, q.ordinal),
       min(q.value) FILTER (WHERE q.value NOT IN ('NaN', 'Infinity', '-Infinity')),
       max(q.value) FILTER (WHERE q.value NOT IN ('NaN', 'Infinity', '-Infinity')),
       (array_agg(q.value ORDER BY q.time DESC, q.ordinal DESC))[1],
       CASE WHEN bool_and(q.text_value IS NULL)
            THEN string_agg(pg_temp.le8(float8send(q.value)), ''::bytea ORDER BY q.time, q.ordinal) END,
       CASE WHEN bool_or(q.text_value IS NOT NULL)
            THEN array_agg(q.text_value ORDER BY q.time, q.ordinal) END,
       floor(min(q.time) / 86400)::integer
FROM (SELECT p.*, (row_number() OVER (PARTITION BY p.series_id ORDER BY p.time, p.ordinal) - 1) / 10000 AS chunk
      FROM points p) q
GROUP BY q.series_id, q.chunk;

UPDATE series s SET first_time = c.first_time, first_day = c.first_day, last_day = c.last_day
FROM (SELECT series_id, min(time_start) AS first_time, min(stored_day) AS first_day, max(stored_day) AS last_day
      FROM point_chunks GROUP BY series_id) c
WHERE c.series_id = s.id;

DROP TABLE points;
DROP TABLE point_chunks_0003;
