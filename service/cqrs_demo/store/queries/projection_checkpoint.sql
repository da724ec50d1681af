-- projection_checkpoint: the checkpoint of %(projection)s, created at 0-0 ('running', no
-- event applied) the first time it is asked for. A row inserted by this statement is not
-- seen by its second SELECT (one snapshot), so exactly one of the two returns it.
WITH created AS (
    INSERT INTO projection_checkpoints (projection) VALUES (%(projection)s)
    ON CONFLICT (projection) DO NOTHING
    RETURNING projection, transaction_id, event_number, events_applied, state, error,
              failed_event_id, failed_event_type, generation
)
SELECT transaction_id::text, event_number, events_applied, state, error, failed_event_id,
       failed_event_type, generation
FROM created
UNION ALL
SELECT transaction_id::text, event_number, events_applied, state, error, failed_event_id,
       failed_event_type, generation
FROM projection_checkpoints
WHERE projection = %(projection)s
