-- A container is its owner's and its short name's: user names may hold '-', so the full
-- name '<owner>-<short name>' of two users' containers can be the same ('ab-c' + 'web',
-- 'ab' + 'c-web'), and nothing is keyed by it any more. The full name stays, as what a
-- path says, indexed but not unique. Port leases follow the key.

CREATE TABLE containers_by_key (
    owner TEXT NOT NULL REFERENCES users(name),
    short_name TEXT NOT NULL,
    name TEXT NOT NULL,
    image TEXT NOT NULL,
    backend TEXT NOT NULL,
    host TEXT NOT NULL,
    status TEXT NOT NULL,
    env TEXT NOT NULL,
    engine_id TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (owner, short_name)
);
INSERT INTO containers_by_key (owner, short_name, name, image, backend, host, status, env, engine_id, created_at)
    SELECT owner, short_name, name, image, backend, host, status, env, engine_id, created_at FROM containers;

CREATE TABLE port_leases_by_key (
    host TEXT NOT NULL,
    host_port BIGINT NOT NULL,
    owner TEXT NOT NULL,
    short_name TEXT NOT NULL,
    guest_port BIGINT NOT NULL,
    PRIMARY KEY (host, host_port),
    FOREIGN KEY (owner, short_name) REFERENCES containers_by_key (owner, short_name) ON DELETE CASCADE
);
INSERT INTO port_leases_by_key (host, host_port, owner, short_name, guest_port)
    SELECT l.host, l.host_port, c.owner, c.short_name, l.guest_port
    FROM port_leases l JOIN containers c ON c.name = l.container;

DROP TABLE port_leases;
DROP TABLE containers;
ALTER TABLE containers_by_key RENAME TO containers;
ALTER TABLE port_leases_by_key RENAME TO port_leases;
CREATE INDEX containers_full_name ON containers (name);
CREATE INDEX port_leases_owner_container ON port_leases (owner, short_name);
