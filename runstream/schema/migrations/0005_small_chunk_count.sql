-- How many chunks of the series hold fewer than SMALL_CHUNK_POINTS points
-- (ingest/_compaction.py): a slow series gets one small chunk per flush, and
-- this count tells the compactor which series to merge, without scanning
-- point_chunks. Kept current by the writer (+) and the compactor (reset).
-- Not indexed on purpose: the writer updates series rows every flush, and an
-- index on this column would make those updates non-HOT.
ALTER TABLE series ADD COLUMN small_chunks integer NOT NULL DEFAULT 0;

UPDATE series s SET small_chunks = c.small
FROM (SELECT series_id, count(*) AS small FROM point_chunks WHERE n < 1000 GROUP BY series_id) c
WHERE c.series_id = s.id;
