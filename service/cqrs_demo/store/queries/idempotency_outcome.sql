-- idempotency_outcome: what a command recorded under an idempotency key still within the
-- retention period (no row: the key is unknown or expired), as append_events replays it.
SELECT k.request_hash, k.stream_version, k.event_ids, k.result
FROM idempotency_keys k
WHERE k.idempotency_key = %(key)s AND k.created_at > now() - %(retention)s
