-- Additive: dead letters ingest could not produce to the dead-letter topic
-- (deleted, unwritable, Kafka refusing) are kept here, in the transaction that
-- stores their offsets, so a partition never waits on that topic; ingest
-- produces them to `topic` later and deletes them (ingest/_dlq.py).
CREATE TABLE dead_letters (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic          text NOT NULL,
    held_at        timestamptz NOT NULL DEFAULT now(),
    key            bytea,
    value          bytea,
    header_names   text[] NOT NULL,
    header_values  bytea[] NOT NULL
);
CREATE INDEX dead_letters_topic ON dead_letters (topic, id);
