-- projection_rebuild_indexes: the indexes of the live tables (public) and of their rebuilds
-- (projection_rebuild), each with its definition after "ON schema.table": a rebuilt table's
-- index is renamed after the live one of the same definition when it is swapped in. Those
-- that back a constraint (primary keys) only if %(constraints)s.
SELECT i.schemaname, i.tablename, i.indexname, regexp_replace(i.indexdef, '^.* ON \S+ ', '')
FROM pg_indexes i
WHERE i.schemaname IN ('public', 'projection_rebuild') AND i.tablename = ANY(%(tables)s::text[])
  AND (%(constraints)s OR NOT EXISTS (
      SELECT FROM pg_constraint c
      WHERE c.conindid = format('%%I.%%I', i.schemaname, i.indexname)::regclass))
ORDER BY i.schemaname, i.tablename, i.indexname
