-- projection_retry: set %(projection)s running again if it is stopped, so that the event it
-- stopped at is tried again (a new release may read it). One row updated if it was stopped.
UPDATE projection_checkpoints
SET state = 'running', error = NULL, failed_event_id = NULL, failed_event_type = NULL,
    updated_at = now()
WHERE projection = %(projection)s AND state = 'stopped'
