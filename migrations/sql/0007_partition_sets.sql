-- The leaf partitions of each configured partitioned table, as a snapshot
-- read them or the running connector last saw them. {{schema}} is replaced
-- by the quoted state schema. Attaching a partition that holds rows, or
-- detaching one, changes the parent's rows without writing a single row
-- change to the WAL; the running connector compares the current leaves with
-- these and backfills the parent when they differ.
CREATE TABLE {{schema}}.partition_sets (
    source_table text PRIMARY KEY,
    leaves       text[] NOT NULL,
    seen_at      timestamptz NOT NULL DEFAULT now()
);
