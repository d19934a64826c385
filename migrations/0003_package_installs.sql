-- 0003_package_installs: every pip run the service made to install a package
-- that code imported (or asked for with `!pip install`) into the shared
-- package cache (APP_PACKAGE_CACHE). A package found in the cache is not
-- installed again, so it has no new row: one row per pip invocation.
CREATE TABLE package_installs (
	id            INTEGER PRIMARY KEY,
	package       TEXT NOT NULL,              -- the distribution, as asked ('opencv-python')
	requirement   TEXT NOT NULL,              -- what pip was given ('b==1.2', 'pillow')
	module        TEXT,                       -- the import that asked for it, NULL for a pip line
	version       TEXT,                       -- installed version, NULL when it failed
	status        TEXT NOT NULL,              -- 'ok', 'failed' or 'timeout'
	started_ms    INTEGER NOT NULL,
	duration_ms   INTEGER NOT NULL,
	started_at    TEXT GENERATED ALWAYS AS
	              (strftime('%Y-%m-%dT%H:%M:%fZ', started_ms / 1000.0, 'unixepoch')) VIRTUAL,
	log_tail      TEXT NOT NULL DEFAULT '',   -- pip's last output lines
	execution_id  TEXT                        -- the run that asked (no foreign key: records outlive it)
);
CREATE INDEX package_installs_by_package ON package_installs (package, started_ms);
