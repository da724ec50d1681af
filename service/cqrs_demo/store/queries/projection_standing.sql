-- projection_standing: the checkpoint of projection %(projection)s, the feed position of the
-- last event it applied, and, if it is stopped, the event it is stopped at (its id, type and
-- error); no row when the projection never ran (the caller reads 0-0, not stopped).
SELECT transaction_id::text, event_number,
       CASE WHEN state = 'stopped' THEN failed_event_id END, failed_event_type, error
FROM projection_checkpoints
WHERE projection = %(projection)s
