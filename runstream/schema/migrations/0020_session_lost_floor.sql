-- Additive: the seqs of a producer session up to `lost_floor` that were unseen
-- when the topic was replaced are already counted as lost; one that arrives
-- later in the new topic is stored and counted as recovered (ingest/_sessions.py).
ALTER TABLE producer_sessions ADD COLUMN lost_floor bigint NOT NULL DEFAULT 0;
