-- projection_rebuild_skip: a rebuild (%(rebuild)s) stopped at an event that an operator
-- skipped for the projection itself (%(live)s, in projection_skips) skips it too: its
-- checkpoint moves onto the event and it goes on rebuilding. No row: not such an event.
UPDATE projection_checkpoints c
SET transaction_id = s.transaction_id,
    event_number = s.event_number,
    state = 'rebuilding',
    error = NULL,
    failed_event_id = NULL,
    failed_event_type = NULL,
    updated_at = now()
FROM projection_skips s
WHERE c.projection = %(rebuild)s
  AND c.state = 'stopped'
  AND s.projection = %(live)s
  AND s.event_id = c.failed_event_id
RETURNING s.event_id
