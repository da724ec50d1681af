-- server_role: whether the server is a standby (in recovery) or a primary, and its version,
-- for `cqrs-demo status`.
SELECT pg_is_in_recovery(), current_setting('server_version')
