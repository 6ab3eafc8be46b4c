-- Alert rules (issue 17): conditions on a run's metrics or status, and what to do when one
-- starts to hold. The query service owns this table: its API writes the rules and its
-- evaluator (query/_alerts.py) the progress columns.
--
--   experiment, run_id   which runs the rule watches (either or both)
--   metric               a metric name or glob (NULL for kind not_responding)
--   kind                 nonfinite | threshold | plateau | not_responding
--   op, threshold        threshold: the value compared (op one of > >= < <=)
--   delta, steps, mode   plateau: no improvement by more than delta within steps steps
--                        (mode min: lower is better; max: higher is better)
--   actions              {"webhook": {"url", "secret"}, "tag": {"key", "value"}, "cancel": true}
--   cursor               how far the evaluator has read (a runstream.stream cursor), so a
--                        restart neither misses a point nor evaluates one twice
--   state                per run and metric: whether the condition holds (an episode is open),
--                        and a plateau's best value and its step
--   fired, last_fired_at, last_error   what the rule did, and its last action's failure
CREATE TABLE alert_rules (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    experiment     text,
    run_id         uuid,
    metric         text,
    kind           text NOT NULL,
    op             text,
    threshold      double precision,
    delta          double precision,
    steps          bigint,
    mode           text,
    actions        jsonb NOT NULL,
    cursor         text,
    state          jsonb NOT NULL DEFAULT '{}',
    fired          integer NOT NULL DEFAULT 0,
    last_fired_at  timestamptz,
    last_error     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (experiment IS NOT NULL OR run_id IS NOT NULL)
);
