-- What each container was given, GPUs lent by id, and per-user quota overrides.
-- Containers made before this migration count with no memory and no CPU.

ALTER TABLE containers ADD COLUMN memory_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE containers ADD COLUMN nano_cpus BIGINT NOT NULL DEFAULT 0;

-- One row per container holding one of a GPU's `share` places: the primary key decides,
-- so two concurrent callers never both get the same place.
CREATE TABLE gpu_leases (
    host TEXT NOT NULL,
    gpu TEXT NOT NULL,
    slot BIGINT NOT NULL,
    owner TEXT NOT NULL,
    short_name TEXT NOT NULL,
    PRIMARY KEY (host, gpu, slot),
    FOREIGN KEY (owner, short_name) REFERENCES containers (owner, short_name) ON DELETE CASCADE
);
CREATE INDEX gpu_leases_owner_container ON gpu_leases (owner, short_name);

-- An administrator's overrides of a user's role quota; NULL keeps the role's value.
CREATE TABLE quotas (
    user_name TEXT PRIMARY KEY REFERENCES users(name) ON DELETE CASCADE,
    containers BIGINT,
    running BIGINT,
    nano_cpus BIGINT,
    memory_bytes BIGINT,
    gpus BIGINT,
    ports BIGINT,
    builds BIGINT,
    storage_bytes BIGINT,
    updated_at BIGINT NOT NULL
);
