-- append_lone_event: a batch of one command (one event, no idempotency key), the batch of
-- every lone client, written with its values as parameters: no JSON batch to build, send and
-- take apart. It gives the command the outcome append_single_events gives it, in the same row
-- (whose header specifies the outcomes), and is tested against both other paths
-- (tests/store/test_write_paths.py). Parameters: $1 stream, $2 expected version (NULL: any),
-- $3 event id, $4 event type, $5 occurred on, $6 payload, $7 metadata.
-- A lone client waits for every command it sends, so what this saves is its latency and
-- the service's CPU per command (docs/performance.md, "A statement for a lone command").
WITH head AS (
    SELECT coalesce((SELECT max(e.version) FROM events e WHERE e.aggregate_id = $1::text), 0)
               AS version
),
appended AS (
    INSERT INTO events
        (aggregate_id, event_type, payload, occurred_on, version, event_id, metadata)
    SELECT $1::text, $4::text, $6::jsonb, $5::timestamptz, h.version + 1, $3::uuid, $7::jsonb
    FROM head h
    WHERE $2::bigint IS NULL OR $2::bigint = h.version
    ON CONFLICT ON CONSTRAINT unique_event_per_aggregate_version DO NOTHING
    RETURNING version, transaction_id, id
),
notified AS (
    SELECT pg_notify('cqrs_events', '') FROM appended
)
SELECT $1::text AS stream,
       CASE WHEN a.version IS NULL THEN 'conflict' ELSE 'appended' END AS outcome,
       coalesce($2::bigint, h.version) AS based_on_version,
       CASE WHEN a.version IS NOT NULL THEN a.version
            WHEN $2::bigint <> h.version THEN h.version
       END AS stream_version,
       a.transaction_id::text, a.id
FROM head h
LEFT JOIN appended a ON true
LEFT JOIN notified ON true
