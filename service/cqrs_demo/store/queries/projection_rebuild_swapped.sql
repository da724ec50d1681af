-- projection_rebuild_swapped: the projection %(live)s is now where its rebuild %(rebuild)s
-- was (position, events applied), running, one generation up; the rebuild's checkpoint goes.
WITH rebuilt AS (
    DELETE FROM projection_checkpoints WHERE projection = %(rebuild)s
    RETURNING transaction_id, event_number, events_applied
)
INSERT INTO projection_checkpoints AS c (projection, transaction_id, event_number,
                                         events_applied, state, generation)
SELECT %(live)s, transaction_id, event_number, events_applied, 'running', 1
FROM rebuilt
ON CONFLICT (projection) DO UPDATE
SET transaction_id = excluded.transaction_id,
    event_number = excluded.event_number,
    events_applied = excluded.events_applied,
    state = 'running',
    error = NULL,
    failed_event_id = NULL,
    failed_event_type = NULL,
    generation = c.generation + 1,
    updated_at = now()
RETURNING transaction_id::text, event_number, events_applied, generation
