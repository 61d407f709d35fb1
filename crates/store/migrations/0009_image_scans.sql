-- What the scanner found in each image, keyed by the image's content (its id, `sha256:...`):
-- every reference of one image shares its scan. `findings` is a JSON array of strings.
-- An administrator's release (`released_by`, `released_at`) outlives a rescan of the same
-- content.

CREATE TABLE image_scans (
    image_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    findings TEXT NOT NULL,
    scanner TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    scanned_at BIGINT NOT NULL,
    released_by TEXT,
    released_at BIGINT
);
CREATE INDEX image_scans_status ON image_scans (status);
