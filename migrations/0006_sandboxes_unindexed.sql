-- 0006_sandboxes_unindexed: the warm pool's table without its index on state.
--
-- The table holds the pool and the runs under way: tens of rows, one or two
-- pages. Its index made every change of a sandbox's state (five per
-- execution: launched, ready, claimed, used, deleted) write the index's page
-- besides the table's, twice the pages through the WAL and its checkpoints;
-- a claim's or a count's scan of the table reads the same page or two.
DROP INDEX sandboxes_by_state;
