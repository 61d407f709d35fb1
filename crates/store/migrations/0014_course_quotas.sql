-- A course's quota for its members, set by an administrator: each value given replaces
-- the role's for the members while the course runs (the most generous of a member's
-- courses wins); a user's own overrides come before it. NULL keeps the role's value,
-- -1 is no limit.
CREATE TABLE course_quotas (
    course TEXT PRIMARY KEY REFERENCES courses(id) ON DELETE CASCADE,
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
