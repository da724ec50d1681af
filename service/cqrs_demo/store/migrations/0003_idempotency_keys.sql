-- Idempotency keys: a command sent again with the same Idempotency-Key is answered from
-- here instead of being appended twice. A key row is written in the same transaction as the
-- command's events (see append_events), so no crash can record one without the other.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    idempotency_key VARCHAR(255) PRIMARY KEY,
    request_hash TEXT NOT NULL,
    stream VARCHAR(255) NOT NULL,
    stream_version BIGINT NOT NULL,
    event_ids UUID[] NOT NULL,
    result JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_idempotency_keys_created_at ON idempotency_keys (created_at);
