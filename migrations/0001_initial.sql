-- 0001_initial: the first schema of the code-interpreter record.
--
-- Applied by db_migrate (storage/db.c) inside one transaction that also sets
-- PRAGMA user_version = 1. Migration files must not contain BEGIN/COMMIT.
--
-- Conventions:
--   * every time is stored as *_ms: INTEGER milliseconds since the Unix epoch
--     (UTC). Each table also has *_at generated columns with the same instant
--     as ISO-8601 UTC text ('2024-05-01T12:00:00.000Z'), computed on read, so
--     `SELECT * FROM executions` is readable in the sqlite3 shell.
--   * ids are TEXT: executions are UUIDs, file objects the lowercase hex
--     SHA-256 of their content (the file name in APP_FILE_STORAGE_PATH).
-- docs/schema.md describes the tables for operators, with audit queries.

-- One row per request that ran code (POST /v1/execute, custom tools).
CREATE TABLE executions (
	id            TEXT PRIMARY KEY NOT NULL,  -- UUID, also sent as X-Execution-Id
	kind          TEXT NOT NULL,              -- 'execute' or 'custom-tool'
	started_ms    INTEGER NOT NULL,           -- request accepted
	finished_ms   INTEGER NOT NULL,           -- response ready
	duration_ms   INTEGER GENERATED ALWAYS AS (finished_ms - started_ms) VIRTUAL,
	started_at    TEXT GENERATED ALWAYS AS
	              (strftime('%Y-%m-%dT%H:%M:%fZ', started_ms / 1000.0, 'unixepoch')) VIRTUAL,
	finished_at   TEXT GENERATED ALWAYS AS
	              (strftime('%Y-%m-%dT%H:%M:%fZ', finished_ms / 1000.0, 'unixepoch')) VIRTUAL,
	exit_code     INTEGER NOT NULL,           -- -1 when killed (time or memory limit)
	-- 'ok' (exit 0), 'error' (non-zero exit), 'timeout', 'memory' (killed by
	-- a limit), 'failed' (the service could not run it; see error)
	status        TEXT NOT NULL,
	source_code   TEXT NOT NULL,
	env_names     TEXT NOT NULL DEFAULT '[]'  -- JSON array of names; values are never stored
	              CHECK (json_valid(env_names) AND json_type(env_names) = 'array'),
	stdout_bytes  INTEGER NOT NULL DEFAULT 0, -- bytes produced, before capping
	stderr_bytes  INTEGER NOT NULL DEFAULT 0,
	sandbox       TEXT,                       -- sandbox id (local) or pod name
	error         TEXT                        -- internal failure message, else NULL
);
-- "last executions", and cleanup of records older than APP_AUDIT_RETENTION
CREATE INDEX executions_by_started ON executions (started_ms);

-- Files that went into a run (placed in /workspace before it started) and
-- files it created or changed (stored afterwards). object_id is deliberately
-- not a foreign key: objects expire after APP_FILE_TTL while the record of
-- which run used them stays for APP_AUDIT_RETENTION.
CREATE TABLE execution_files (
	execution_id  TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
	direction     TEXT NOT NULL CHECK (direction IN ('input', 'output')),
	path          TEXT NOT NULL,              -- absolute path under /workspace
	object_id     TEXT NOT NULL,              -- store object (hex SHA-256)
	PRIMARY KEY (execution_id, direction, path)
) WITHOUT ROWID;
-- "which run produced / consumed this object"
CREATE INDEX execution_files_by_object ON execution_files (object_id, direction);

-- One row per object in the store (APP_FILE_STORAGE_PATH/<id>).
CREATE TABLE file_objects (
	id            TEXT PRIMARY KEY NOT NULL,  -- lowercase hex SHA-256 of the content
	size          INTEGER NOT NULL CHECK (size >= 0), -- bytes
	created_ms    INTEGER NOT NULL,           -- first stored
	last_used_ms  INTEGER NOT NULL,           -- last stored, read or given to a run
	created_at    TEXT GENERATED ALWAYS AS
	              (strftime('%Y-%m-%dT%H:%M:%fZ', created_ms / 1000.0, 'unixepoch')) VIRTUAL,
	last_used_at  TEXT GENERATED ALWAYS AS
	              (strftime('%Y-%m-%dT%H:%M:%fZ', last_used_ms / 1000.0, 'unixepoch')) VIRTUAL
);
-- cleanup of objects unused for APP_FILE_TTL
CREATE INDEX file_objects_by_last_used ON file_objects (last_used_ms);

-- The warm pool: every sandbox (or pod) the pool manager has launched and not
-- yet destroyed. A sandbox moves starting -> ready -> claimed -> used and is
-- never reused; 'used' rows are destroyed and deleted by the pool manager.
CREATE TABLE sandboxes (
	id            TEXT PRIMARY KEY NOT NULL,  -- sandbox id (local) or pod name
	pid           INTEGER NOT NULL,           -- sandbox init pid (0 for a pod)
	state         TEXT NOT NULL DEFAULT 'starting'
	              CHECK (state IN ('starting', 'ready', 'claimed', 'used')),
	claimer       INTEGER,                    -- pid of the worker that claimed it
	created_ms    INTEGER NOT NULL,
	updated_ms    INTEGER NOT NULL,           -- last state change
	created_at    TEXT GENERATED ALWAYS AS
	              (strftime('%Y-%m-%dT%H:%M:%fZ', created_ms / 1000.0, 'unixepoch')) VIRTUAL,
	updated_at    TEXT GENERATED ALWAYS AS
	              (strftime('%Y-%m-%dT%H:%M:%fZ', updated_ms / 1000.0, 'unixepoch')) VIRTUAL
);
-- db_sandbox_claim picks the oldest ready sandbox; counts by state
CREATE INDEX sandboxes_by_state ON sandboxes (state, created_ms);
