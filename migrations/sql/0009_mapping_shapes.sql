-- What shaped each mapping's objects at the last start: its template,
-- metadata columns and chunking, as JSON. {{schema}} is replaced by the
-- quoted state schema. A start that finds them changed re-indexes the
-- mapping's rows online (a backfill request), instead of leaving the old
-- rendering on every row that does not happen to change.
CREATE TABLE {{schema}}.mapping_shapes (
    collection   text NOT NULL,
    source_table text NOT NULL,
    shape        jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection, source_table)
);

-- A backfill that must rewrite every row, not only those whose content hash
-- changed: the chunking changed, which the content hash does not cover.
ALTER TABLE {{schema}}.backfill_requests ADD COLUMN rewrite boolean NOT NULL DEFAULT false;
