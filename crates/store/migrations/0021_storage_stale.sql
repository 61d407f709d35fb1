-- A user's storage figure on a host is stale once one of their containers there is
-- removed (it may have written since the figure was measured): 1 until measured again.
ALTER TABLE storage_usage ADD COLUMN stale BIGINT NOT NULL DEFAULT 0;
