-- projection_skip: skip the event %(projection)s stopped at, if it is %(event_id)s: record
-- it in projection_skips (who, why, where it was), move the checkpoint onto it and set the
-- projection running again, in one statement. Returns the event's position and type, or no
-- row when the projection is not stopped at that event (nothing changes then).
WITH stopped AS (
    SELECT c.projection, e.event_id, e.event_type, e.transaction_id, e.id
    FROM projection_checkpoints c
    JOIN events e ON e.event_id = c.failed_event_id
    WHERE c.projection = %(projection)s
      AND c.state = 'stopped'
      AND c.failed_event_id = %(event_id)s
    FOR UPDATE OF c
), recorded AS (
    INSERT INTO projection_skips (projection, event_id, event_type, transaction_id,
                                  event_number, reason, skipped_by)
    SELECT projection, event_id, event_type, transaction_id, id, %(reason)s, %(skipped_by)s
    FROM stopped
)
UPDATE projection_checkpoints c
SET transaction_id = s.transaction_id,
    event_number = s.id,
    state = 'running',
    error = NULL,
    failed_event_id = NULL,
    failed_event_type = NULL,
    updated_at = now()
FROM stopped s
WHERE c.projection = s.projection
RETURNING c.transaction_id::text, c.event_number, s.event_type
