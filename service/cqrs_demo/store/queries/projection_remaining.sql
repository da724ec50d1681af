-- projection_remaining: how many events there are after a position (a rebuild's progress).
SELECT count(*) FROM events
WHERE (transaction_id, id) > (%(transaction_id)s::xid8, %(event_number)s)
