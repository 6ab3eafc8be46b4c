-- Additive: how a chunk's times and vals are laid out (runstream/chunks.py): 0 the raw
-- arrays every chunk written before had, 1 packed by pcodec. A constant default adds the
-- column without rewriting a partition.
ALTER TABLE point_chunks ADD COLUMN codec smallint NOT NULL DEFAULT 0;
