-- Which console is making each container that is still `creating`: a console that dies
-- mid-create leaves its record `creating`, and the reconcile settles it at once when that
-- console is gone (see the store's coordination), instead of waiting for it to be stale.
-- The row goes when the create ends, or with the container's record.
CREATE TABLE creates_in_flight (
    owner TEXT NOT NULL,
    short_name TEXT NOT NULL,
    console TEXT NOT NULL,
    PRIMARY KEY (owner, short_name),
    FOREIGN KEY (owner, short_name) REFERENCES containers (owner, short_name) ON DELETE CASCADE
);
