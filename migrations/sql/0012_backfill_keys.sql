-- Backfills of some rows of a table only: `verify --repair` re-indexes the
-- rows it found missing or stale, not the whole table. {{schema}} is
-- replaced by the quoted state schema. keys holds their source_key values;
-- NULL (every request before this column) reads the whole table.
ALTER TABLE {{schema}}.backfill_requests ADD COLUMN keys text[];
