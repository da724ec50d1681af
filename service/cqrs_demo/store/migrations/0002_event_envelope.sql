-- The envelope around each event: its own identity, its causes, and its transaction.
--
-- event_id: the event's UUID, unique; rows written before this migration get a random one.
-- metadata: command id, correlation id and the client's timestamp.
-- transaction_id: the writing transaction. Ids (BIGSERIAL) are handed out before commit, so a
--   reader of the global feed that pages by id alone can skip an event whose transaction
--   commits after a later id became visible. Readers page by (transaction_id, id) and stop
--   below pg_snapshot_xmin(pg_current_snapshot()), which never skips.
ALTER TABLE events ADD COLUMN IF NOT EXISTS event_id UUID;
UPDATE events SET event_id = gen_random_uuid() WHERE event_id IS NULL;
ALTER TABLE events ALTER COLUMN event_id SET DEFAULT gen_random_uuid();
ALTER TABLE events ALTER COLUMN event_id SET NOT NULL;
DO $$
BEGIN
    ALTER TABLE events ADD CONSTRAINT unique_event_id UNIQUE (event_id);
EXCEPTION
    WHEN duplicate_table OR duplicate_object THEN NULL;
END
$$;

ALTER TABLE events ADD COLUMN IF NOT EXISTS metadata JSONB NOT NULL DEFAULT '{}'::jsonb;

ALTER TABLE events
    ADD COLUMN IF NOT EXISTS transaction_id XID8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS idx_events_transaction_id_id ON events (transaction_id, id);
