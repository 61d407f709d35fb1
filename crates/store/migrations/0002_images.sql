-- What we know of an image beyond what Docker knows: its description and whether its
-- owner shares it. Keyed by reference (`wm/alice/web:1`), so a rebuild keeps both.
CREATE TABLE image_meta (
    reference TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    description TEXT NOT NULL,
    shared BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
