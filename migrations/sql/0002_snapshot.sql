-- Snapshot and backfill bookkeeping. {{schema}} is replaced by the quoted
-- state schema.

-- How far the snapshot of each table got, one row per key range ("part")
-- that a reader pages through in primary-key order. A snapshot that stops
-- half way continues after last_key. Keys are JSON arrays of the key
-- columns' PostgreSQL text forms.
CREATE TABLE {{schema}}.snapshot_progress (
    collection   text NOT NULL,
    source_table text NOT NULL,
    part         int NOT NULL,
    lower_key    jsonb,                  -- exclusive; NULL: from the first key
    upper_key    jsonb,                  -- inclusive; NULL: to the last key
    last_key     jsonb,                  -- last key indexed; NULL: none yet
    rows_done    bigint NOT NULL DEFAULT 0,
    done         boolean NOT NULL DEFAULT false,
    started_lsn  pg_lsn NOT NULL,        -- snapshot point of the first read
    snapshot_lsn pg_lsn NOT NULL,        -- snapshot point of the latest read
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection, source_table, part)
);

-- Backfills asked of the running connector (`cdc-indexer snapshot` while
-- `cdc-indexer run` streams the slot). The connector claims pending rows,
-- reports progress in them and marks them done or failed.
CREATE TABLE {{schema}}.backfill_requests (
    id           bigserial PRIMARY KEY,
    collection   text NOT NULL,
    source_table text NOT NULL,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'done', 'failed')),
    rows_total   bigint,
    rows_done    bigint NOT NULL DEFAULT 0,
    snapshot_lsn pg_lsn,
    error        text,
    requested_at timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
CREATE INDEX ON {{schema}}.backfill_requests (status, id);

