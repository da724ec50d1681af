SELECT based_on_version, stream_version, appended
FROM append_events(
    %(stream)s,
    %(expected_version)s,
    %(event_types)s::text[],
    %(payloads)s::jsonb[],
    %(occurred_on)s::timestamptz[],
    %(event_ids)s::uuid[],
    %(metadata)s::jsonb
)
