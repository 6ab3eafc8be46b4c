-- The foundation schema. Ingest owns every table here; the query service only
-- reads them, except `files`, which the query service's artifact store writes.

CREATE TABLE experiments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE runs (
    id            uuid PRIMARY KEY,
    experiment_id bigint NOT NULL REFERENCES experiments (id),
    display_name  text,
    parent_id     uuid,
    status        text NOT NULL,
    created_at    timestamptz NOT NULL,
    started_at    timestamptz,
    ended_at      timestamptz,
    heartbeat_at  timestamptz,
    error         jsonb,
    properties    jsonb NOT NULL DEFAULT '{}',
    tags          jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX runs_experiment_created ON runs (experiment_id, created_at DESC);
CREATE INDEX runs_parent ON runs (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE status_history (
    run_id  uuid NOT NULL,
    status  text NOT NULL,
    time    timestamptz NOT NULL,
    error   jsonb
);
CREATE INDEX status_history_run ON status_history (run_id, time);

-- One row per (run, metric name). kind: scalar | list | row | table | image.
-- value_type applies to scalars: float | int | bool | str (int widens to float).
CREATE TABLE series (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      uuid NOT NULL,
    name        text NOT NULL,
    kind        text NOT NULL,
    value_type  text,
    UNIQUE (run_id, name)
);

-- Scalar points. time is epoch seconds; ordinal keeps logging order within a
-- producer session for points logged within one clock tick.
CREATE TABLE points (
    series_id   bigint NOT NULL,
    step        bigint NOT NULL,
    time        double precision NOT NULL,
    ordinal     bigint NOT NULL,
    value       double precision,
    text_value  text
);
CREATE INDEX points_series_time ON points (series_id, time, ordinal);

-- log_list / log_row / log_table / log_image entries, one per call, in order.
CREATE TABLE series_entries (
    series_id   bigint NOT NULL,
    time        double precision NOT NULL,
    position    bigint NOT NULL,
    value       jsonb NOT NULL
);
CREATE INDEX series_entries_series ON series_entries (series_id, time, position);

-- Exactly once: the highest batch seq stored per producer session, and the
-- next Kafka offset to consume per partition, both written in the same
-- transaction as the data.
CREATE TABLE producer_sessions (
    session_id  uuid PRIMARY KEY,
    run_id      uuid NOT NULL,
    last_seq    bigint NOT NULL
);

CREATE TABLE consumer_offsets (
    topic        text NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);

CREATE TABLE files (
    run_id        uuid NOT NULL,
    name          text NOT NULL,
    digest        text NOT NULL,
    size          bigint NOT NULL,
    content_type  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, name)
);
