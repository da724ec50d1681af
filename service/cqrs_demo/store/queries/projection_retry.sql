-- projection_retry: set %(projection)s going again if it is stopped ('running', or for a
-- rebuild's checkpoint NAME:rebuild, 'rebuilding'), so that the event it stopped at is tried
-- again (a new release may read it). One row updated if it was stopped.
UPDATE projection_checkpoints
SET state = CASE WHEN projection LIKE '%%:rebuild' THEN 'rebuilding' ELSE 'running' END,
    error = NULL, failed_event_id = NULL, failed_event_type = NULL, updated_at = now()
WHERE projection = %(projection)s AND state = 'stopped'
