SELECT name, checksum, schema_version FROM schema_functions
