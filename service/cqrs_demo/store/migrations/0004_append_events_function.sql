-- append_events: appends a batch of commands, each with all of its events or none of them.
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
-- Any other error aborts the whole statement, and so the whole batch.
CREATE OR REPLACE FUNCTION append_events(
    streams TEXT[],
    expected_versions BIGINT[],
    event_counts INTEGER[],
    command_metadata JSONB[],
    idempotency_keys TEXT[],
    request_hashes TEXT[],
    command_results JSONB[],
    new_event_types TEXT[],
    new_payloads JSONB[],
    new_occurred_on TIMESTAMPTZ[],
    new_event_ids UUID[],
    idempotency_retention INTERVAL
) RETURNS TABLE (
    command INTEGER,
    outcome TEXT,
    based_on_version BIGINT,
    stream_version BIGINT,
    event_ids UUID[],
    result JSONB
)
LANGUAGE plpgsql
AS $$
DECLARE
    i INTEGER;
    next_event INTEGER := 1;
    first_event INTEGER;
    n INTEGER;
    head BIGINT;
    key TEXT;
    failed_constraint TEXT;
    recorded RECORD;
    command_event_ids UUID[];
BEGIN
    IF coalesce(cardinality(new_event_types), 0)
            <> (SELECT coalesce(sum(c), 0) FROM unnest(event_counts) AS c)
        OR cardinality(new_payloads) <> cardinality(new_event_types)
        OR cardinality(new_occurred_on) <> cardinality(new_event_types)
        OR cardinality(new_event_ids) <> cardinality(new_event_types) THEN
        RAISE EXCEPTION 'append_events: event arrays do not match event_counts'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    FOR i IN 1 .. coalesce(cardinality(streams), 0) LOOP
        n := event_counts[i];
        key := idempotency_keys[i];
        first_event := next_event;
        next_event := next_event + n;
        command_event_ids := new_event_ids[first_event : next_event - 1];
        IF n < 1 THEN
            RAISE EXCEPTION 'append_events: command % of stream % has no event', i, streams[i]
                USING ERRCODE = 'invalid_parameter_value';
        END IF;

        IF key IS NOT NULL THEN
            IF NOT pg_try_advisory_xact_lock(hashtextextended('idempotency-key:' || key, 0)) THEN
                RETURN QUERY SELECT i, 'key_in_flight', NULL::BIGINT, NULL::BIGINT,
                    NULL::UUID[], NULL::JSONB;
                CONTINUE;
            END IF;
            SELECT k.request_hash, k.stream_version, k.event_ids, k.result INTO recorded
            FROM idempotency_keys k
            WHERE k.idempotency_key = key AND k.created_at > now() - idempotency_retention;
            IF FOUND THEN
                RETURN QUERY SELECT i,
                    CASE WHEN recorded.request_hash = request_hashes[i]
                        THEN 'replayed' ELSE 'key_reused' END,
                    recorded.stream_version - cardinality(recorded.event_ids),
                    recorded.stream_version, recorded.event_ids, recorded.result;
                CONTINUE;
            END IF;
        END IF;

        SELECT coalesce(max(e.version), 0) INTO head FROM events e
        WHERE e.aggregate_id = streams[i];
        IF expected_versions[i] IS NOT NULL AND head <> expected_versions[i] THEN
            RETURN QUERY SELECT i, 'conflict', expected_versions[i], head, NULL::UUID[],
                NULL::JSONB;
            CONTINUE;
        END IF;

        IF n = 1 THEN
            INSERT INTO events
                (aggregate_id, event_type, payload, occurred_on, version, event_id, metadata)
            VALUES (streams[i], new_event_types[first_event], new_payloads[first_event],
                    new_occurred_on[first_event], head + 1, command_event_ids[1],
                    command_metadata[i])
            ON CONFLICT ON CONSTRAINT unique_event_per_aggregate_version DO NOTHING;
            IF NOT FOUND THEN
                RETURN QUERY SELECT i, 'conflict', head, coalesce(max(e.version), 0),
                    NULL::UUID[], NULL::JSONB
                    FROM events e WHERE e.aggregate_id = streams[i];
                CONTINUE;
            END IF;
        ELSE
            BEGIN
                INSERT INTO events
                    (aggregate_id, event_type, payload, occurred_on, version, event_id, metadata)
                SELECT streams[i], new_event_types[first_event + p - 1],
                       new_payloads[first_event + p - 1],
                       new_occurred_on[first_event + p - 1], head + p,
                       command_event_ids[p], command_metadata[i]
                FROM generate_series(1, n) AS p;
            EXCEPTION
                WHEN unique_violation THEN
                    GET STACKED DIAGNOSTICS failed_constraint = CONSTRAINT_NAME;
                    IF failed_constraint <> 'unique_event_per_aggregate_version' THEN
                        RAISE;
                    END IF;
                    RETURN QUERY SELECT i, 'conflict', head, coalesce(max(e.version), 0),
                        NULL::UUID[], NULL::JSONB
                        FROM events e WHERE e.aggregate_id = streams[i];
                    CONTINUE;
            END;
        END IF;

        IF key IS NOT NULL THEN
            INSERT INTO idempotency_keys AS k
                (idempotency_key, request_hash, stream, stream_version, event_ids, result)
            VALUES (key, request_hashes[i], streams[i], head + n, command_event_ids,
                    command_results[i])
            ON CONFLICT (idempotency_key) DO UPDATE  -- an expired key is used afresh
                SET request_hash = excluded.request_hash, stream = excluded.stream,
                    stream_version = excluded.stream_version, event_ids = excluded.event_ids,
                    result = excluded.result, created_at = excluded.created_at;
        END IF;
        RETURN QUERY SELECT i, 'appended', head, head + n, command_event_ids, command_results[i];
    END LOOP;
END
$$;
