-- Hosts an administrator drained: they keep their containers but get no new ones.
CREATE TABLE drained_hosts (
    host TEXT PRIMARY KEY,
    since BIGINT NOT NULL
);
