-- Failed logins and join codes, one row each, so that every console of an installation
-- counts the same failures (the console's rate limits read them over a sliding minute;
-- rows older than that are deleted as new ones come). `kind` is `login` or `join`, the
-- user name is lowercased, `address` is '' when the client's address is unknown.
CREATE TABLE login_failures (
    kind TEXT NOT NULL,
    user_name TEXT NOT NULL,
    address TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX login_failures_by_user ON login_failures (kind, user_name, at_ms);
CREATE INDEX login_failures_by_address ON login_failures (kind, address, at_ms);
CREATE INDEX login_failures_by_time ON login_failures (at_ms);
