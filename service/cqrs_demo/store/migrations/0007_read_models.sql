-- The read side: the read models the projector keeps, and where each projection is.
--
-- projection_checkpoints: one row per projection. (transaction_id, event_number) is the
--   feed position of the last event applied (0-0: none yet); it is written in the same
--   transaction as the read-model rows that event changed, so a crash anywhere applies
--   every event exactly once. state: 'running', 'stopped' (error, failed_event_id and
--   failed_event_type say why) or 'rebuilding'.
-- projection_skips: events an operator chose to skip (`cqrs-demo projections skip`), kept.
-- orders: one row per order, as its events left it; total_price exact, as sent.
-- user_order_summaries: one row per user who placed an order.
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection TEXT PRIMARY KEY,
    transaction_id XID8 NOT NULL DEFAULT '0',
    event_number BIGINT NOT NULL DEFAULT 0,
    events_applied BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'running'
        CHECK (state IN ('running', 'stopped', 'rebuilding')),
    error TEXT,
    failed_event_id UUID,
    failed_event_type TEXT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS projection_skips (
    projection TEXT NOT NULL,
    event_id UUID NOT NULL,
    event_type TEXT NOT NULL,
    transaction_id XID8 NOT NULL,
    event_number BIGINT NOT NULL,
    reason TEXT NOT NULL,
    skipped_by TEXT NOT NULL,
    skipped_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, event_id)
);

CREATE TABLE IF NOT EXISTS orders (
    order_id VARCHAR(255) PRIMARY KEY,
    user_id VARCHAR(255) NOT NULL,
    product_id VARCHAR(255) NOT NULL,
    quantity INTEGER NOT NULL,
    total_price NUMERIC NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('placed', 'cancelled')),
    placed_at TIMESTAMPTZ NOT NULL,
    cancelled_at TIMESTAMPTZ,
    reason TEXT
);
-- A user's orders, newest first, by keyset (placed_at, order_id); with or without status.
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, placed_at DESC, order_id DESC);
CREATE INDEX IF NOT EXISTS orders_by_user_and_status
    ON orders (user_id, status, placed_at DESC, order_id DESC);

CREATE TABLE IF NOT EXISTS user_order_summaries (
    user_id VARCHAR(255) PRIMARY KEY,
    orders_placed BIGINT NOT NULL,
    orders_cancelled BIGINT NOT NULL,
    open_orders BIGINT NOT NULL,
    open_total NUMERIC NOT NULL,
    last_order_at TIMESTAMPTZ
);
