SELECT command, outcome, based_on_version, stream_version, event_ids, result,
       transaction_id::text, event_number
FROM append_events(%(batch)s::jsonb, %(idempotency_retention)s)
