-- projection_status: for each projection named in %(projections)s (a checkpoint row or not;
-- a rebuild's, NAME:rebuild, only if there is one):
-- its position, events applied, state and error, the feed's head, how many events there are
-- after its position and how old (created_at) the oldest of them is, in seconds (0 if none).
SELECT p.projection,
       coalesce(c.transaction_id, '0')::text, coalesce(c.event_number, 0),
       coalesce(c.events_applied, 0), coalesce(c.state, 'running'), c.error,
       c.failed_event_id, c.failed_event_type, coalesce(c.generation, 0),
       head.transaction_id::text, head.id,
       behind.events,
       coalesce(extract(epoch FROM now() - behind.oldest), 0)::float8
FROM unnest(%(projections)s::text[]) AS p (projection)
LEFT JOIN projection_checkpoints c ON c.projection = p.projection
LEFT JOIN LATERAL (
    SELECT e.transaction_id, e.id FROM events e ORDER BY e.transaction_id DESC, e.id DESC LIMIT 1
) head ON true
CROSS JOIN LATERAL (
    SELECT count(*) AS events, min(e.created_at) AS oldest
    FROM events e
    WHERE (e.transaction_id, e.id)
          > (coalesce(c.transaction_id, '0'::xid8), coalesce(c.event_number, 0))
) behind
WHERE c.projection IS NOT NULL OR p.projection NOT LIKE '%%:rebuild'
ORDER BY p.projection
