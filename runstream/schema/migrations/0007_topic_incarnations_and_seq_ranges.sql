-- Additive: which incarnation of the events topic the stored offsets belong
-- to, the partition count they were read with, and exact per-session seq
-- tracking (ingest/_incarnation.py, ingest/_sessions.py).

-- One row per events topic. epoch goes up by one each time Kafka lost records
-- ingest had not stored: a new topic (deleted and created again, a new
-- cluster, a lost volume), a log truncated below the stored offset, records
-- expired by retention before ingest read them. topic_id and cluster_id are
-- Kafka's (null where the broker does not say).
CREATE TABLE topic_incarnations (
    topic       text PRIMARY KEY,
    epoch       integer NOT NULL,
    topic_id    uuid,
    cluster_id  text,
    partitions  integer NOT NULL,
    since       timestamptz NOT NULL DEFAULT now()
);

-- What ingest noticed about the topic, newest last, for operators
-- (`runstream status`) and tests: kind is new_topic, truncated, expired or
-- partitions_added; detail says what was done.
CREATE TABLE topic_changes (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic   text NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    kind    text NOT NULL,
    epoch   integer NOT NULL,
    detail  text NOT NULL
);

-- Partitions added to the topic: those from first_new on are held until every
-- older partition is stored up to drain_to (its end offset when the growth was
-- seen), so a run whose key moved to a new partition is read in order.
CREATE TABLE partition_growth (
    topic       text NOT NULL,
    first_new   integer NOT NULL,
    partitions  integer NOT NULL,
    drain_to    bigint[] NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    drained_at  timestamptz,
    PRIMARY KEY (topic, first_new)
);

-- last_seq keeps its meaning for readers (every batch up to it is seen);
-- ahead holds the ranges seen above it ([lo, hi, lo, hi...]), epoch the
-- topic epoch of the session's last batch (0: none stored yet).
ALTER TABLE producer_sessions
    ADD COLUMN ahead bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN epoch integer NOT NULL DEFAULT 1;

-- When the stored offset last moved: progress that outlives a worker process,
-- so a crash-looping worker is seen not to make any.
ALTER TABLE consumer_offsets ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
