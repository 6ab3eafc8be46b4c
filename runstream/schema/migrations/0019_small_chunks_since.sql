-- When the oldest small chunk of a series not yet merged was stored
-- (ingest/_compaction.py): with many live series each gets a chunk of a point
-- or two per flush, so the compactor merges a series once its small chunks
-- have waited ``age`` (a bounded rewrite per point) rather than whenever it
-- holds a few of them. Set by the writer when it adds a small chunk to a
-- series that had none waiting, cleared by the compactor. Not indexed, for
-- the reason 0005 gives.
ALTER TABLE series ADD COLUMN small_since timestamptz;

UPDATE series SET small_since = now() WHERE small_chunks > 0;
