-- refuse_event_change: the trigger function that keeps events append-only (migration 0005
-- created it and the triggers that call it, BEFORE UPDATE OR DELETE for each row and BEFORE
-- TRUNCATE for the statement). It refuses the change with a message that names the
-- operation and a hint that says what to do instead, for every role.
--
-- `cqrs-demo migrate` runs this file (CREATE OR REPLACE) whenever its text differs from the
-- checksum recorded in schema_functions. Keep it a trigger function without arguments: the
-- triggers of 0005 call it by that signature.
CREATE OR REPLACE FUNCTION refuse_event_change() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % on events is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Correct a fact by appending a new event to its stream.';
END
$$;
