-- projection_checkpoint_if_any: the checkpoint of %(projection)s, if it has one.
SELECT transaction_id::text, event_number, events_applied, state, error, failed_event_id,
       failed_event_type, generation
FROM projection_checkpoints
WHERE projection = %(projection)s
