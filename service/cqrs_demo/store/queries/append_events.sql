SELECT command, outcome, based_on_version, stream_version, event_ids, result
FROM append_events(
    %(streams)s::text[],
    %(expected_versions)s::bigint[],
    %(event_counts)s::integer[],
    %(metadata)s::jsonb[],
    %(idempotency_keys)s::text[],
    %(request_hashes)s::text[],
    %(results)s::jsonb[],
    %(event_types)s::text[],
    %(payloads)s::jsonb[],
    %(occurred_on)s::timestamptz[],
    %(event_ids)s::uuid[],
    %(idempotency_retention)s
)
