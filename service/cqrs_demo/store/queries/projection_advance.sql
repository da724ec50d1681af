-- projection_advance: move %(projection)s's checkpoint from the position its batch was read
-- after to the last event applied, and stop it there if an event could not be applied
-- (%(error)s not null); a rebuild's checkpoint stays 'rebuilding' otherwise. Runs first in
-- the batch's transaction: it takes the checkpoint's row lock, and a projector whose
-- checkpoint moved meanwhile (another one took over, an operator stopped it, a rebuild was
-- swapped in) updates nothing, and rolls its batch back.
UPDATE projection_checkpoints
SET transaction_id = %(to_transaction_id)s::xid8,
    event_number = %(to_event_number)s,
    events_applied = events_applied + %(applied)s,
    state = CASE WHEN %(error)s::text IS NULL THEN state ELSE 'stopped' END,
    error = %(error)s::text,
    failed_event_id = %(failed_event_id)s::uuid,
    failed_event_type = %(failed_event_type)s::text,
    updated_at = now()
WHERE projection = %(projection)s
  AND state IN ('running', 'rebuilding')
  AND (transaction_id, event_number) = (%(from_transaction_id)s::xid8, %(from_event_number)s)
  AND generation = %(generation)s
