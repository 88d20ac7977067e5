-- Schema for `make demo`: one table the connector indexes into the
-- Weaviate collection Article.
CREATE TABLE public.articles (
    id         bigserial PRIMARY KEY,
    title      text NOT NULL,
    body       text NOT NULL,
    author     text,
    category   text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
