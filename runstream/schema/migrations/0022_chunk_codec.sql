-- Additive: how a chunk's times and vals are laid out (runstream/chunks.py): 0 the raw
-- arrays every chunk written before had, 1 packed by pcodec. A constant default adds the
-- column without rewriting a partition.
ALTER TABLE point_chunks ADD COLUMN codec smallint NOT NULL DEFAULT 0;
-- The chunks compaction packs in the background (ingest/_packing.py): raw ones of at least
-- SMALL_CHUNK_POINTS (1,000) points, by the age of their last point. Flushes write them and
-- packing removes them within minutes, so the index stays small; its first build covers the
-- raw chunks earlier versions wrote, which are then packed lazily.
CREATE INDEX point_chunks_unpacked ON point_chunks (time_end) WHERE codec = 0 AND n >= 1000;
