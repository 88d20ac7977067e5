-- Embedding bookkeeping. {{schema}} is replaced by the quoted state schema.

-- Vectors already computed, by model id and SHA-256 of the chunk text, so
-- that a text is never sent to the provider twice (metadata-only changes,
-- unchanged chunks of an edited document, replays, restarts). Bounded by
-- embedding.cache.max_stored: the least recently used rows are pruned.
CREATE TABLE {{schema}}.embedding_cache (
    model     text NOT NULL,
    text_hash bytea NOT NULL,               -- SHA-256 of the chunk text
    vector    bytea NOT NULL,               -- float32 little-endian
    last_used timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, text_hash)
);
CREATE INDEX ON {{schema}}.embedding_cache (last_used);

-- The vector space of each collection the connector writes: a start with a
-- different model or dimensions is refused rather than mixing spaces.
CREATE TABLE {{schema}}.collections (
    collection text PRIMARY KEY,
    model_id   text NOT NULL,               -- e.g. openai/text-embedding-3-small/1536, hash/v1/384, weaviate/text2vec-openai
    dimensions int NOT NULL,                -- 0 when Weaviate's vectorizer makes the vectors
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- What was sent to the embedding provider, per model and source table:
-- texts and cl100k_base tokens actually sent (cache hits excluded), and
-- their estimated cost at embedding.price_per_million_tokens.
CREATE TABLE {{schema}}.embedding_usage (
    model        text NOT NULL,
    source_table text NOT NULL,
    texts        bigint NOT NULL DEFAULT 0,
    tokens       bigint NOT NULL DEFAULT 0,
    cost         double precision NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, source_table)
);
