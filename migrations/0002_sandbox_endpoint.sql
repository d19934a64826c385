-- 0002_sandbox_endpoint: where a worker reaches a sandbox's executor server.
--
-- NULL for local sandboxes (the unix socket path is derived from the id);
-- 'http://POD_IP:8000' for Kubernetes pods, set by the pool manager when the
-- pod becomes ready (db_sandbox_set_ready).
ALTER TABLE sandboxes ADD COLUMN endpoint TEXT;
