-- The event log is append-only, for every role: a trigger refuses UPDATE, DELETE and
-- TRUNCATE on events with a message that says why. (Only a table owner or superuser can
-- drop the trigger: that is a schema change, made in a migration, visible in review.)
CREATE OR REPLACE FUNCTION refuse_event_change() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % on events is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Correct a fact by appending a new event to its stream.';
END
$$;

DROP TRIGGER IF EXISTS events_are_append_only ON events;
CREATE TRIGGER events_are_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_event_change();

DROP TRIGGER IF EXISTS events_are_never_truncated ON events;
CREATE TRIGGER events_are_never_truncated
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_event_change();
