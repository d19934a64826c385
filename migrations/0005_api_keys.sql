-- 0005_api_keys: who called (APP_API_KEYS_FILE) and which objects are whose.
--
-- Keys are recorded by name only: the key itself, or its digest, is never
-- written here. Without keys both stay empty (api_key NULL).

-- The name of the API key the request carried; NULL when the service runs
-- without keys.
ALTER TABLE executions ADD COLUMN api_key TEXT;
-- "executions per key" and "what did this key run lately"
CREATE INDEX executions_by_key ON executions (api_key, started_ms);

-- With keys, an object is visible to a key only when the key uploaded it or
-- one of its runs produced it: one row per (object, key). The same bytes
-- uploaded by two keys are one object with two rows. The rows go with the
-- object when cleanup removes it.
CREATE TABLE object_keys (
	object_id     TEXT NOT NULL REFERENCES file_objects (id) ON DELETE CASCADE,
	api_key       TEXT NOT NULL,              -- the key's name
	since_ms      INTEGER NOT NULL,           -- first stored or produced for this key
	since_at      TEXT GENERATED ALWAYS AS
	              (strftime('%Y-%m-%dT%H:%M:%fZ', since_ms / 1000.0, 'unixepoch')) VIRTUAL,
	PRIMARY KEY (object_id, api_key)
) WITHOUT ROWID;
-- "which objects does this key have"
CREATE INDEX object_keys_by_key ON object_keys (api_key, object_id);
