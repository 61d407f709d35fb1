-- Reclaiming idle and expired containers: each container's expiry (and who set it, so
-- that its owner cannot postpone one an administrator or a course's teacher set), when
-- it was last used through the console (exec), since when the reclaim worker has seen it
-- idle, and why the console itself stopped it ('idle' or 'expired').

ALTER TABLE containers ADD COLUMN expires_at BIGINT;
ALTER TABLE containers ADD COLUMN expiry_set_by TEXT;
ALTER TABLE containers ADD COLUMN last_activity_at BIGINT;
ALTER TABLE containers ADD COLUMN idle_since BIGINT;
ALTER TABLE containers ADD COLUMN stop_reason TEXT;
CREATE INDEX containers_expires_at ON containers (expires_at);
