-- projection_rebuild_lock: the checkpoints of a projection (%(live)s) and of its rebuild
-- (%(rebuild)s), locked for the swap: a batch of the live projector being committed is
-- waited for, and the next one waits for the swap. The live one may not exist yet.
SELECT projection, state, transaction_id::text, event_number, events_applied
FROM projection_checkpoints
WHERE projection IN (%(live)s, %(rebuild)s)
ORDER BY projection
FOR UPDATE
