SELECT outcome, based_on_version, stream_version, event_ids, result
FROM append_events(
    %(stream)s,
    %(expected_version)s,
    %(event_types)s::text[],
    %(payloads)s::jsonb[],
    %(occurred_on)s::timestamptz[],
    %(event_ids)s::uuid[],
    %(metadata)s::jsonb,
    %(key)s,
    %(key_request_hash)s,
    %(key_result)s::jsonb,
    %(idempotency_retention)s
)
