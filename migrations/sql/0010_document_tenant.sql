-- The Weaviate tenant that holds each row's objects, for mappings with
-- tables[].tenant (NULL otherwise). {{schema}} is replaced by the quoted
-- state schema. A row whose tenant value changes is removed from the tenant
-- recorded here; a delete reaches it without searching every tenant.
ALTER TABLE {{schema}}.documents ADD COLUMN tenant text;
