-- append_events: appends a batch of commands, each with all of its events or none of them.
--
-- This file is the function's one source: `cqrs-demo migrate` runs it (CREATE OR REPLACE)
-- whenever its text differs from the checksum recorded in schema_functions (migration 0004
-- created the first version). The release before this one keeps calling the function during
-- an upgrade and after a rollback: keep its signature and its outcomes backward compatible.
--
-- The batch is one JSON array, one element per command:
--   {"stream": …, "expected_version": N or null, "metadata": {…}, "idempotency_key": … or
--    null, "request_hash": …, "result": {…}, "events": [{"event_id": …, "event_type": …,
--    "occurred_on": …, "payload": {…}}, …]}
-- (one document instead of a dozen arrays: the client writes it in one call to a C JSON
-- encoder, and numbers stay exact decimals all the way into jsonb).
--
-- One call is one statement: in autocommit, one round trip and one transaction (one WAL
-- flush) for the whole batch. Each command is decided on its own: it gets its own outcome,
-- and a command that is refused leaves nothing, while the others of the batch commit.
--
-- For each command, in the order given (the caller sorts a batch by stream, so that two
-- batches wait for each other's rows in one order and can never deadlock):
--
-- 1. Idempotency key, if any: a transaction-scoped advisory lock on the key tells a
--    duplicate that arrives while the first is still running ('key_in_flight') without
--    waiting. Holding it, a key recorded less than idempotency_retention ago is answered
--    from its row: 'replayed' with the recorded outcome for the same request_hash,
--    'key_reused' for another.
-- 2. The stream's head is read; with an expected version, it must equal it ('conflict').
-- 3. The events are inserted at head+1..head+n. The unique constraint (aggregate_id,
--    version) is the lock: if a concurrent transaction inserted head+1 first, the INSERT
--    waits for it, and once it commits the command is a 'conflict' carrying both versions,
--    re-read after the winner committed. A single event uses ON CONFLICT DO NOTHING (no
--    subtransaction: a batch may hold many); several events use a subtransaction, so that
--    none of them remains.
-- 4. The key, if any, is recorded with the outcome, in the same transaction.
--
-- 'appended' and 'replayed' carry the feed position (store/feed.py) of the command's last
-- event: (transaction_id, event_number); a replay, that of the event it recorded, looked up
-- by its event id. When the batch inserted any event, the function sends one notification
-- on the channel cqrs_events (store/notifications.py), empty; it reaches listeners at
-- commit, and not at all if the batch does not commit.
--
-- Any other error aborts the whole statement, and so the whole batch.
--
-- The result columns transaction_id and event_number came after the first six. A new
-- result type needs DROP (CREATE OR REPLACE cannot change it); both run in the one
-- transaction migrate applies this file in, so a caller finds either function, never none.
-- The release before calls `SELECT command, outcome, … result FROM append_events(…)`: it
-- names its six columns, which keep their names, types, order and meanings, so it reads
-- the new function as it read the old one (tests/store/test_positions_and_notifications.py
-- runs its statement, prepared before the replacement, against this function).
DROP FUNCTION IF EXISTS append_events(JSONB, INTERVAL);
CREATE OR REPLACE FUNCTION append_events(batch JSONB, idempotency_retention INTERVAL)
RETURNS TABLE (
    command INTEGER,
    outcome TEXT,
    based_on_version BIGINT,
    stream_version BIGINT,
    event_ids UUID[],
    result JSONB,
    transaction_id XID8,
    event_number BIGINT
)
LANGUAGE plpgsql
AS $$
DECLARE
    i INTEGER;
    cmd JSONB;
    stream TEXT;
    expected BIGINT;
    n INTEGER;
    head BIGINT;
    key TEXT;
    failed_constraint TEXT;
    recorded RECORD;
    command_event_ids UUID[];
    last_event_number BIGINT;
    appended_any BOOLEAN := false;
BEGIN
    FOR cmd, i IN SELECT c.value, c.ordinality::INTEGER
                  FROM jsonb_array_elements(batch) WITH ORDINALITY AS c LOOP
        stream := cmd->>'stream';
        expected := (cmd->>'expected_version')::BIGINT;
        key := cmd->>'idempotency_key';
        n := jsonb_array_length(cmd->'events');
        IF n < 1 THEN
            RAISE EXCEPTION 'append_events: command % of stream % has no event', i, stream
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        command_event_ids := ARRAY(
            SELECT (e->>'event_id')::UUID FROM jsonb_array_elements(cmd->'events') AS e);

        IF key IS NOT NULL THEN
            IF NOT pg_try_advisory_xact_lock(hashtextextended('idempotency-key:' || key, 0)) THEN
                RETURN QUERY SELECT i, 'key_in_flight', NULL::BIGINT, NULL::BIGINT,
                    NULL::UUID[], NULL::JSONB, NULL::XID8, NULL::BIGINT;
                CONTINUE;
            END IF;
            SELECT k.request_hash, k.stream_version, k.event_ids, k.result INTO recorded
            FROM idempotency_keys k
            WHERE k.idempotency_key = key AND k.created_at > now() - idempotency_retention;
            IF FOUND THEN
                RETURN QUERY SELECT i,
                    CASE WHEN recorded.request_hash = cmd->>'request_hash'
                        THEN 'replayed' ELSE 'key_reused' END,
                    recorded.stream_version - cardinality(recorded.event_ids),
                    recorded.stream_version, recorded.event_ids, recorded.result,
                    e.transaction_id, e.id
                    FROM (SELECT) AS one_row
                    LEFT JOIN events e
                        ON e.event_id = recorded.event_ids[cardinality(recorded.event_ids)];
                CONTINUE;
            END IF;
        END IF;

        SELECT coalesce(max(e.version), 0) INTO head FROM events e WHERE e.aggregate_id = stream;
        IF expected IS NOT NULL AND head <> expected THEN
            RETURN QUERY SELECT i, 'conflict', expected, head, NULL::UUID[], NULL::JSONB,
                NULL::XID8, NULL::BIGINT;
            CONTINUE;
        END IF;

        IF n = 1 THEN
            INSERT INTO events
                (aggregate_id, event_type, payload, occurred_on, version, event_id, metadata)
            SELECT stream, e->>'event_type', e->'payload', (e->>'occurred_on')::TIMESTAMPTZ,
                   head + 1, command_event_ids[1], cmd->'metadata'
            FROM (SELECT cmd->'events'->0) AS single (e)
            ON CONFLICT ON CONSTRAINT unique_event_per_aggregate_version DO NOTHING
            RETURNING id INTO last_event_number;
            IF NOT FOUND THEN
                RETURN QUERY SELECT i, 'conflict', head, coalesce(max(e.version), 0),
                    NULL::UUID[], NULL::JSONB, NULL::XID8, NULL::BIGINT
                    FROM events e WHERE e.aggregate_id = stream;
                CONTINUE;
            END IF;
        ELSE
            BEGIN
                WITH inserted AS (
                    INSERT INTO events
                        (aggregate_id, event_type, payload, occurred_on, version, event_id,
                         metadata)
                    SELECT stream, e->>'event_type', e->'payload',
                           (e->>'occurred_on')::TIMESTAMPTZ, head + p, command_event_ids[p],
                           cmd->'metadata'
                    FROM jsonb_array_elements(cmd->'events') WITH ORDINALITY AS each_event (e, p)
                    RETURNING id
                )
                SELECT max(id) INTO last_event_number FROM inserted;
            EXCEPTION
                WHEN unique_violation THEN
                    GET STACKED DIAGNOSTICS failed_constraint = CONSTRAINT_NAME;
                    IF failed_constraint <> 'unique_event_per_aggregate_version' THEN
                        RAISE;
                    END IF;
                    RETURN QUERY SELECT i, 'conflict', head, coalesce(max(e.version), 0),
                        NULL::UUID[], NULL::JSONB, NULL::XID8, NULL::BIGINT
                        FROM events e WHERE e.aggregate_id = stream;
                    CONTINUE;
            END;
        END IF;

        IF key IS NOT NULL THEN
            INSERT INTO idempotency_keys AS k
                (idempotency_key, request_hash, stream, stream_version, event_ids, result)
            VALUES (key, cmd->>'request_hash', stream, head + n, command_event_ids,
                    cmd->'result')
            ON CONFLICT (idempotency_key) DO UPDATE  -- an expired key is used afresh
                SET request_hash = excluded.request_hash, stream = excluded.stream,
                    stream_version = excluded.stream_version, event_ids = excluded.event_ids,
                    result = excluded.result, created_at = excluded.created_at;
        END IF;
        appended_any := true;
        RETURN QUERY SELECT i, 'appended', head, head + n, command_event_ids, cmd->'result',
            pg_current_xact_id(), last_event_number;
    END LOOP;
    IF appended_any THEN
        PERFORM pg_notify('cqrs_events', '');
    END IF;
END
$$;
