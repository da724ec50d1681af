-- read_feed: the events after a position, in feed order: by the writing transaction's id,
-- then by row id, at most %(limit)s, and only from transactions older than every one still
-- running (below pg_snapshot_xmin of this statement's snapshot).
--
-- Why not by id alone: ids are handed out when rows are inserted, transactions commit in
-- another order, so a reader that saw id 11 may not yet have seen id 10 (still running); it
-- would skip it for good. A transaction below xmin has ended, and every transaction that
-- ends later has a larger id than any reader has passed, so none is skipped; a long
-- transaction holds the feed back until it ends, and never loses an event.
-- The row comparison walks idx_events_transaction_id_id (transaction_id, id) in order.
-- The metadata only if %(metadata)s (projections do not read it).
SELECT e.transaction_id::text, e.id, e.aggregate_id, e.event_id, e.event_type, e.version,
       e.occurred_on, e.payload::text, CASE WHEN %(metadata)s THEN e.metadata::text END
FROM events e
WHERE (e.transaction_id, e.id) > (%(transaction_id)s::xid8, %(event_number)s)
  AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY e.transaction_id, e.id
LIMIT %(limit)s
