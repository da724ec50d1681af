-- append_single_events: the common batch, written set-based: every command has exactly one
-- event and no idempotency key, and no two commands share a stream (the caller checks; any
-- other batch goes to append_events, whose header in functions/append_events.sql specifies
-- the outcomes this statement keeps). The batch is one JSON array of flat objects:
--   {"stream": …, "expected_version": N or null, "event_id": …, "event_type": …,
--    "occurred_on": …, "payload": {…}, "metadata": {…}}
--
-- One row per command: (stream, outcome, based_on_version, stream_version,
-- transaction_id, event_number).
-- - 'appended': its event took version head+1; stream_version is that version, and
--   (transaction_id, event_number) the event's position in the feed (store/feed.py).
-- - 'conflict' with stream_version: the head was not the expected version.
-- - 'conflict' with stream_version NULL: a concurrent transaction took head+1 and committed
--   after this statement's snapshot was taken; this statement cannot see that row, so the
--   caller reads the stream's version again once the statement is over.
-- Each command is decided on its own, and a refused one leaves nothing; any other error
-- (a duplicate event id, a value too long) aborts the whole statement, and so the batch.
-- When at least one event is inserted, the statement sends one notification on the channel
-- cqrs_events (store/notifications.py), empty: it reaches listeners when the batch commits.
-- The CTE `notified` is joined (LEFT JOIN ... ON true: every row kept, nothing of it read)
-- so that it runs at all; it calls pg_notify at most once, and not when nothing was inserted.
--
-- Why a plain statement and not a SQL function in a migration: it is prepared on each
-- connection (store/prepared.py) and PostgreSQL reuses its plan, where a LANGUAGE sql function
-- holding an INSERT is never inlined and, before PostgreSQL 18, parses and plans its body
-- at every call; and a new release needs no schema change for it.
--
-- The heads are read once per stream (the CTE is used twice, so it is materialised), each
-- a backward scan of unique_event_per_aggregate_version. The rows are inserted in stream
-- order, byte-wise (COLLATE "C", which is the code point order the caller sorts
-- append_events batches by), so that two batches wait for each other's rows in one order
-- and can never deadlock. ON CONFLICT waits for a concurrent insert of the same version;
-- if that one commits, the row is skipped, with no subtransaction.
WITH command AS (
    SELECT c.*,
           coalesce((SELECT max(e.version) FROM events e WHERE e.aggregate_id = c.stream), 0)
               AS head
    FROM jsonb_to_recordset($1::jsonb) AS c (
        stream TEXT,
        expected_version BIGINT,
        event_id UUID,
        event_type TEXT,
        occurred_on TIMESTAMPTZ,
        payload JSONB,
        metadata JSONB
    )
),
appended AS (
    INSERT INTO events
        (aggregate_id, event_type, payload, occurred_on, version, event_id, metadata)
    SELECT c.stream, c.event_type, c.payload, c.occurred_on, c.head + 1, c.event_id,
           c.metadata
    FROM command c
    WHERE c.expected_version IS NULL OR c.expected_version = c.head
    ORDER BY c.stream COLLATE "C"
    ON CONFLICT ON CONSTRAINT unique_event_per_aggregate_version DO NOTHING
    RETURNING aggregate_id, version, transaction_id, id
),
notified AS (
    SELECT pg_notify('cqrs_events', '') FROM (SELECT FROM appended LIMIT 1) AS any_appended
)
SELECT c.stream,
       CASE WHEN a.version IS NULL THEN 'conflict' ELSE 'appended' END AS outcome,
       coalesce(c.expected_version, c.head) AS based_on_version,
       CASE WHEN a.version IS NOT NULL THEN a.version
            WHEN c.expected_version <> c.head THEN c.head
       END AS stream_version,
       a.transaction_id::text, a.id
FROM command c
LEFT JOIN appended a ON a.aggregate_id = c.stream
LEFT JOIN notified ON true
