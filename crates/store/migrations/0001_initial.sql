-- One schema for SQLite and PostgreSQL: only types and syntax both accept.
-- Times are Unix seconds (BIGINT); JSON is TEXT.

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    display_name TEXT,
    role TEXT NOT NULL,
    -- 'local' (password here) or 'ldap' (checked against the directory)
    source TEXT NOT NULL,
    password_hash TEXT,
    uid_number BIGINT,
    created_at BIGINT NOT NULL
);

-- Login sessions and personal access tokens. Only a SHA-256 of the secret is kept.
CREATE TABLE tokens (
    hash TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    -- 'session' or 'personal'
    kind TEXT NOT NULL,
    name TEXT,
    -- 'all' or 'build'
    scope TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT
);
CREATE INDEX tokens_user ON tokens (user_name);

CREATE TABLE containers (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL REFERENCES users(name),
    short_name TEXT NOT NULL,
    image TEXT NOT NULL,
    backend TEXT NOT NULL,
    host TEXT NOT NULL,
    -- creating, created, running, paused, restarting, exited, dead, gone
    status TEXT NOT NULL,
    -- JSON array of "KEY=value"
    env TEXT NOT NULL,
    engine_id TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX containers_owner ON containers (owner);

-- A host port belongs to at most one container per host: the primary key is what keeps
-- concurrent creates from ever sharing one.
CREATE TABLE port_leases (
    host TEXT NOT NULL,
    host_port BIGINT NOT NULL,
    container TEXT NOT NULL REFERENCES containers(name) ON DELETE CASCADE,
    guest_port BIGINT NOT NULL,
    PRIMARY KEY (host, host_port)
);
CREATE INDEX port_leases_container ON port_leases (container);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    -- Unix microseconds, for ordering
    at BIGINT NOT NULL,
    actor TEXT,
    action TEXT NOT NULL,
    target TEXT,
    -- the HTTP status of the answer
    result BIGINT NOT NULL,
    detail TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
