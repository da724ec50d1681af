-- record_function: the checksum of the function text just run, and the schema version of the
-- release that ran it; in the same transaction as the CREATE OR REPLACE FUNCTION.
INSERT INTO schema_functions (name, checksum, schema_version)
VALUES (%(name)s, %(checksum)s, %(schema_version)s)
ON CONFLICT (name) DO UPDATE
    SET checksum = excluded.checksum, schema_version = excluded.schema_version,
        applied_at = excluded.applied_at
