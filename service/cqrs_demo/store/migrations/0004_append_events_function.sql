-- append_events: all of a command's events at the versions after the stream's head, or none;
-- and, when the command carries an idempotency key, the key with them.
--
-- One call is one statement, so in autocommit it is one round trip and one transaction.
-- The head is read, then the events are inserted at head+1..head+n. The unique constraint
-- (aggregate_id, version) is the lock: a concurrent append to the same stream that inserts
-- head+1 first makes this INSERT wait for it, then fail with unique_violation once it
-- commits. That failure is caught here (a subtransaction, so nothing of this command
-- remains) and answered as a conflict carrying both versions, re-read after the winner
-- committed. Any other error propagates and aborts the whole statement.
--
-- Idempotency: a transaction-scoped advisory lock on the key tells a duplicate that arrives
-- while the first is still running ('key_in_flight') without waiting for it. Holding the
-- lock, a key recorded less than idempotency_retention ago is answered from its row:
-- 'replayed' with the original outcome for the same request_hash, 'key_reused' for another.
--
-- outcome is one of: appended, conflict, replayed, key_reused, key_in_flight.
CREATE OR REPLACE FUNCTION append_events(
    stream_name TEXT,
    expected_version BIGINT,
    new_event_types TEXT[],
    new_payloads JSONB[],
    new_occurred_on TIMESTAMPTZ[],
    new_event_ids UUID[],
    new_metadata JSONB,
    key TEXT DEFAULT NULL,
    key_request_hash TEXT DEFAULT NULL,
    key_result JSONB DEFAULT NULL,
    idempotency_retention INTERVAL DEFAULT '24 hours'
) RETURNS TABLE (
    outcome TEXT,
    based_on_version BIGINT,
    stream_version BIGINT,
    event_ids UUID[],
    result JSONB
)
LANGUAGE plpgsql
AS $$
DECLARE
    head BIGINT;
    failed_constraint TEXT;
    recorded idempotency_keys%ROWTYPE;
    event_count INTEGER := coalesce(cardinality(new_event_types), 0);
BEGIN
    IF event_count = 0
        OR coalesce(cardinality(new_payloads), 0) <> event_count
        OR coalesce(cardinality(new_occurred_on), 0) <> event_count
        OR coalesce(cardinality(new_event_ids), 0) <> event_count THEN
        RAISE EXCEPTION 'append_events: no events, or arrays of unequal length, for stream %',
            stream_name USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF key IS NOT NULL THEN
        IF NOT pg_try_advisory_xact_lock(hashtextextended('idempotency-key:' || key, 0)) THEN
            RETURN QUERY SELECT 'key_in_flight', NULL::BIGINT, NULL::BIGINT, NULL::UUID[],
                NULL::JSONB;
            RETURN;
        END IF;
        SELECT * INTO recorded FROM idempotency_keys k
        WHERE k.idempotency_key = key AND k.created_at > now() - idempotency_retention;
        IF FOUND THEN
            RETURN QUERY SELECT
                CASE WHEN recorded.request_hash = key_request_hash
                    THEN 'replayed' ELSE 'key_reused' END,
                recorded.stream_version - cardinality(recorded.event_ids),
                recorded.stream_version, recorded.event_ids, recorded.result;
            RETURN;
        END IF;
    END IF;

    SELECT coalesce(max(e.version), 0) INTO head FROM events e WHERE e.aggregate_id = stream_name;
    IF expected_version IS NOT NULL AND head <> expected_version THEN
        RETURN QUERY SELECT 'conflict', expected_version, head, NULL::UUID[], NULL::JSONB;
        RETURN;
    END IF;

    BEGIN
        INSERT INTO events
            (aggregate_id, event_type, payload, occurred_on, version, event_id, metadata)
        SELECT stream_name, n.event_type, n.payload, n.occurred_on, head + n.position,
               n.event_id, new_metadata
        FROM unnest(new_event_types, new_payloads, new_occurred_on, new_event_ids)
            WITH ORDINALITY AS n (event_type, payload, occurred_on, event_id, position);
    EXCEPTION
        WHEN unique_violation THEN
            GET STACKED DIAGNOSTICS failed_constraint = CONSTRAINT_NAME;
            IF failed_constraint <> 'unique_event_per_aggregate_version' THEN
                RAISE;
            END IF;
            RETURN QUERY
                SELECT 'conflict', head, coalesce(max(e.version), 0), NULL::UUID[], NULL::JSONB
                FROM events e WHERE e.aggregate_id = stream_name;
            RETURN;
    END;

    IF key IS NOT NULL THEN
        INSERT INTO idempotency_keys AS k
            (idempotency_key, request_hash, stream, stream_version, event_ids, result)
        VALUES (key, key_request_hash, stream_name, head + event_count, new_event_ids,
                coalesce(key_result, '{}'::jsonb))
        ON CONFLICT (idempotency_key) DO UPDATE  -- an expired key is used afresh
            SET request_hash = excluded.request_hash, stream = excluded.stream,
                stream_version = excluded.stream_version, event_ids = excluded.event_ids,
                result = excluded.result, created_at = excluded.created_at;
    END IF;
    RETURN QUERY SELECT 'appended', head, head + event_count, new_event_ids, key_result;
END
$$;
