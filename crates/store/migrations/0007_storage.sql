-- How much each user keeps in their storage on each host, as last measured: what the
-- storage quota counts. Measured by the console when the user's files change through it
-- and when it is asked; containers write into the storage without the console seeing.
CREATE TABLE storage_usage (
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    measured_at BIGINT NOT NULL,
    PRIMARY KEY (owner, host)
);
