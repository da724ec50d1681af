-- idempotency_outcome: what a command recorded under an idempotency key still within the
-- retention period (no row: the key is unknown or expired), as append_events replays it,
-- with the feed position of its last event (looked up by its event id, which is unique).
SELECT k.request_hash, k.stream_version, k.event_ids, k.result, e.transaction_id::text, e.id
FROM idempotency_keys k
LEFT JOIN events e ON e.event_id = k.event_ids[cardinality(k.event_ids)]
WHERE k.idempotency_key = %(key)s AND k.created_at > now() - %(retention)s
