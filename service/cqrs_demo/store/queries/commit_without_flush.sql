-- commit_without_flush: this session's commits return before their WAL is flushed to disk
-- (the WAL writer flushes it within a fraction of a second). Database's derived_commits:
-- only for sessions whose transactions write data derived from the events together with
-- the position they reflect; a crash may lose the last of them, whole, to be applied again.
SET synchronous_commit = off
