-- 0005_api_keys: who called (APP_API_KEYS_FILE).
--
-- Keys are recorded by name only: the key itself, or its digest, is never
-- written here. Without keys the column stays NULL. Which objects are whose
-- is not kept here but in the object store, which replicas share
-- (<store>/.owners/<id>/, docs/schema.md).

-- The name of the API key the request carried; NULL when the service runs
-- without keys.
ALTER TABLE executions ADD COLUMN api_key TEXT;
-- "executions per key" and "what did this key run lately"
CREATE INDEX executions_by_key ON executions (api_key, started_ms);
