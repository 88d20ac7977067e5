-- The connector's own state. {{schema}} is replaced by the quoted state schema.

-- The last position confirmed to the replication slot, so a restart resumes
-- there even if the slot's own confirmed position lags behind.
CREATE TABLE {{schema}}.checkpoint (
    slot          text PRIMARY KEY,
    confirmed_lsn pg_lsn NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- What Weaviate holds for each source row: the content hash that lets an
-- unchanged row be skipped across restarts, and the chunk count that tells
-- which chunks to remove when a document shrinks.
CREATE TABLE {{schema}}.documents (
    collection   text NOT NULL,
    source_table text NOT NULL,
    source_key   text NOT NULL,
    content_hash text NOT NULL,
    chunk_count  int NOT NULL,
    source_lsn   pg_lsn NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection, source_table, source_key)
);

-- Rows that could not be indexed, one entry per row, updated on each retry.
CREATE TABLE {{schema}}.dead_letters (
    id              bigserial PRIMARY KEY,
    collection      text NOT NULL,
    source_table    text NOT NULL,
    source_key      text NOT NULL,
    lsn             pg_lsn,
    error           text,
    attempts        int NOT NULL DEFAULT 1,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (collection, source_table, source_key)
);
