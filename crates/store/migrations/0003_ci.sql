-- A user's GitLab runner settings. The runner token is shown again only as a hint.
CREATE TABLE ci_settings (
    owner TEXT PRIMARY KEY REFERENCES users(name) ON DELETE CASCADE,
    gitlab_url TEXT NOT NULL,
    runner_token TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
