-- projection_position: the checkpoint of projection %(projection)s, the feed position of the
-- last event it applied; no row when the projection never ran (the caller reads 0-0).
SELECT transaction_id::text, event_number
FROM projection_checkpoints
WHERE projection = %(projection)s
