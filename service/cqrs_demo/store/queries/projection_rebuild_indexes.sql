-- projection_rebuild_indexes: the indexes of the live tables (public) and of their rebuilds
-- (projection_rebuild), each with its definition after "ON schema.table": a rebuilt table's
-- index is renamed after the live one of the same definition when it is swapped in.
SELECT schemaname, tablename, indexname, regexp_replace(indexdef, '^.* ON \S+ ', '')
FROM pg_indexes
WHERE schemaname IN ('public', 'projection_rebuild') AND tablename = ANY(%(tables)s::text[])
