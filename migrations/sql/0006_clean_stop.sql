-- Whether the last `cdc-indexer run` of a slot stopped cleanly, that is with
-- every change Weaviate acknowledged recorded in documents. {{schema}} is
-- replaced by the quoted state schema. A run that finds it false (the last
-- one was killed, lost its database, or was cut off at the shutdown timeout)
-- does not trust the recorded hashes and chunk counts of the changes it
-- replays: Weaviate may hold a newer version of those rows than the state.
ALTER TABLE {{schema}}.checkpoint ADD COLUMN clean_stop boolean NOT NULL DEFAULT false;
