-- Physical versions of each configured collection (the name applications
-- query, served as a Weaviate alias). {{schema}} is replaced by the quoted
-- state schema. At most one version serves (the alias points at it) and at
-- most one fills (a reindex: backfilled from the tables while the stream
-- writes to both). spec is what shapes the version's objects (templates,
-- metadata, chunking, embedding; no secrets), so that the serving version
-- keeps its own rendering while a new one fills; fingerprint is its hash.
CREATE TABLE {{schema}}.collection_versions (
    collection   text NOT NULL,
    version      int NOT NULL,
    physical     text NOT NULL,
    phase        text NOT NULL CHECK (phase IN ('serving', 'filling', 'retired')),
    fingerprint  text NOT NULL,
    spec         jsonb NOT NULL,
    backfills    bigint[],            -- the fill's backfill requests; NULL until requested
    created_at   timestamptz NOT NULL DEFAULT now(),
    switched_at  timestamptz,
    retire_at    timestamptz,         -- retired: when the version is deleted
    PRIMARY KEY (collection, version),
    UNIQUE (physical)
);
CREATE UNIQUE INDEX ON {{schema}}.collection_versions (collection) WHERE phase = 'serving';
CREATE UNIQUE INDEX ON {{schema}}.collection_versions (collection) WHERE phase = 'filling';

-- Reindexes asked for by `cdc-indexer reindex`; the running connector
-- starts each and deletes the request in the same transaction.
CREATE TABLE {{schema}}.reindex_requests (
    collection   text PRIMARY KEY,
    requested_at timestamptz NOT NULL DEFAULT now()
);
