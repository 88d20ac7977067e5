-- Which connector a backfill request is for. {{schema}} is replaced by the
-- quoted state schema. Several connectors, each with its own slot and
-- tables, may share one state schema: each claims and requeues only the
-- requests of its own slot. Requests from before this column have none and
-- are served by whichever connector claims them first, as before.
ALTER TABLE {{schema}}.backfill_requests ADD COLUMN slot text;
