-- append_events: all of a command's events at the versions after the stream's head, or none.
--
-- One call is one statement, so in autocommit it is one round trip and one transaction.
-- The head is read, then the events are inserted at head+1..head+n. The unique constraint
-- (aggregate_id, version) is the lock: a concurrent append to the same stream that inserts
-- head+1 first makes this INSERT wait for it, then fail with unique_violation once it
-- commits. That failure is caught here (a subtransaction, so nothing of this command
-- remains) and answered as a mismatch carrying both versions, re-read after the winner
-- committed. Any other error propagates and aborts the whole statement.
CREATE OR REPLACE FUNCTION append_events(
    stream_name TEXT,
    expected_version BIGINT,
    new_event_types TEXT[],
    new_payloads JSONB[],
    new_occurred_on TIMESTAMPTZ[],
    new_event_ids UUID[],
    new_metadata JSONB
) RETURNS TABLE (based_on_version BIGINT, stream_version BIGINT, appended BOOLEAN)
LANGUAGE plpgsql
AS $$
DECLARE
    head BIGINT;
    failed_constraint TEXT;
    event_count INTEGER := coalesce(cardinality(new_event_types), 0);
BEGIN
    IF coalesce(cardinality(new_payloads), 0) <> event_count
        OR coalesce(cardinality(new_occurred_on), 0) <> event_count
        OR coalesce(cardinality(new_event_ids), 0) <> event_count THEN
        RAISE EXCEPTION 'append_events: arrays of unequal length for stream %', stream_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT coalesce(max(e.version), 0) INTO head FROM events e WHERE e.aggregate_id = stream_name;
    IF expected_version IS NOT NULL AND head <> expected_version THEN
        RETURN QUERY SELECT expected_version, head, false;
        RETURN;
    END IF;
    IF event_count = 0 THEN
        RETURN QUERY SELECT head, head, false;
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
                SELECT head, coalesce(max(e.version), 0), false
                FROM events e WHERE e.aggregate_id = stream_name;
            RETURN;
    END;
    RETURN QUERY SELECT head, head + event_count, true;
END
$$;
