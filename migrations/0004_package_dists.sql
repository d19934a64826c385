-- 0004_package_dists: the package cache as one directory per distribution
-- ($APP_PACKAGE_CACHE/dists/<dir>), which runs used which, and every removal.
-- A run's sys.path gets only the directories of what its code imports.
CREATE TABLE package_dists (
	dir           TEXT PRIMARY KEY,           -- directory under dists/ ('numpy-1.26.4-<32 hex>')
	package       TEXT NOT NULL,              -- normalized distribution name ('numpy')
	version       TEXT NOT NULL,
	requirement   TEXT NOT NULL,              -- what pip was given for it ('numpy', 'b==1.2')
	kind          TEXT NOT NULL               -- which requirements it may serve:
	              CHECK (kind IN ('latest', 'pin', 'requirement')),
	              -- 'latest': installed for the bare name (the index's choice), serves bare names and pins
	              -- of its version; 'pin': installed for NAME==VERSION, serves such pins only;
	              -- 'requirement': extras or ranges, serves exactly that requirement
	metadata      TEXT NOT NULL,              -- its *.dist-info directory inside dir
	size_bytes    INTEGER NOT NULL,           -- disk use of the whole directory (with dependencies)
	installed_ms  INTEGER NOT NULL,
	last_used_ms  INTEGER NOT NULL,
	installed_at  TEXT GENERATED ALWAYS AS
	              (strftime('%Y-%m-%dT%H:%M:%fZ', installed_ms / 1000.0, 'unixepoch')) VIRTUAL,
	last_used_at  TEXT GENERATED ALWAYS AS
	              (strftime('%Y-%m-%dT%H:%M:%fZ', last_used_ms / 1000.0, 'unixepoch')) VIRTUAL
);
CREATE INDEX package_dists_by_package ON package_dists (package, kind, installed_ms);
CREATE INDEX package_dists_by_use ON package_dists (last_used_ms);

-- The cached distributions each run had on its sys.path. A distribution that
-- a running execution uses is never evicted.
CREATE TABLE execution_packages (
	execution_id  TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
	dir           TEXT NOT NULL,
	PRIMARY KEY (execution_id, dir)
);
CREATE INDEX execution_packages_by_dir ON execution_packages (dir);

-- Every directory removed from the cache.
CREATE TABLE package_evictions (
	id            INTEGER PRIMARY KEY,
	dir           TEXT NOT NULL,
	package       TEXT,                       -- NULL for a directory without a row
	version       TEXT,
	size_bytes    INTEGER,
	last_used_ms  INTEGER,
	evicted_ms    INTEGER NOT NULL,
	evicted_at    TEXT GENERATED ALWAYS AS
	              (strftime('%Y-%m-%dT%H:%M:%fZ', evicted_ms / 1000.0, 'unixepoch')) VIRTUAL,
	reason        TEXT NOT NULL               -- 'cache full', 'orphan' (no row), 'missing' (no directory)
);
CREATE INDEX package_evictions_by_time ON package_evictions (evicted_ms);

-- The directory an install published (NULL when it failed).
ALTER TABLE package_installs ADD COLUMN dir TEXT;
