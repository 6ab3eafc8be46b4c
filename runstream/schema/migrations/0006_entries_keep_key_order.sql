-- log_row / log_table columns come back in the order the user logged them:
-- jsonb sorts an object's keys, json keeps the text as ingest wrote it (the
-- event's JSON, in logging order). Entries stored before this migration keep
-- their sorted order. Nothing queries inside these values, so jsonb's
-- operators and indexes are not missed.
ALTER TABLE series_entries ALTER COLUMN value TYPE json USING value::json;
