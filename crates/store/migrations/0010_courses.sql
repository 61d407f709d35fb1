-- Courses and complete account management (issue 14/17).
--
-- A disabled account cannot log in and its tokens are gone; it keeps its things until an
-- administrator deletes it. The audit log gains the client's address.

ALTER TABLE users ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;

ALTER TABLE audit_log ADD COLUMN source TEXT;
CREATE INDEX audit_log_actor ON audit_log (actor, at);
CREATE INDEX audit_log_action ON audit_log (action, at);

-- A course: a teacher's class for a term. Its members are students (or anyone) enrolled
-- by name; the teacher sees and may act on their containers, nothing else.
CREATE TABLE courses (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    term TEXT,
    owner TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    -- Unix seconds, or NULL for none
    ends_at BIGINT,
    -- the directory group whose members are enrolled at their login
    ldap_group TEXT,
    -- JSON array of host labels its members' containers need by default (GPU hosts)
    host_labels TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL
);
CREATE INDEX courses_owner ON courses (owner);
CREATE INDEX courses_ldap_group ON courses (ldap_group);

CREATE TABLE course_members (
    course TEXT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    added_at BIGINT NOT NULL,
    -- 1: enrolled because of the course's directory group, and kept in step with it at
    -- each login; 0: enrolled by name
    via_group BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (course, user_name)
);
CREATE INDEX course_members_user ON course_members (user_name);
