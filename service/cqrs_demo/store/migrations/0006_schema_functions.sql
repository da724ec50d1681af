-- schema_functions: which text of each function in store/functions/ the database holds.
-- `cqrs-demo migrate` runs a function's file when its SHA-256 differs from the checksum
-- recorded here (or none is), and records the new one in the same transaction.
-- schema_version is the latest migration of the release that ran it: a release behind that
-- leaves the function alone, so an older release's migrate never puts an older text back
-- under a newer release.
CREATE TABLE IF NOT EXISTS schema_functions (
    name TEXT PRIMARY KEY,
    checksum TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
