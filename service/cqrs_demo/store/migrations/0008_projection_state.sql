-- What the user_order_summaries projection keeps besides its read model: the price of every
-- open order, since a cancel does not carry the price that leaves the user's open total.
-- Written in the same transaction as the summaries and the checkpoint; not for queries.
CREATE TABLE IF NOT EXISTS user_order_summary_open_orders (
    order_id VARCHAR(255) PRIMARY KEY,
    user_id VARCHAR(255) NOT NULL,
    total_price NUMERIC NOT NULL
);

-- A projection's generation: a rebuild swapped in moves it up by one, so that a projector
-- that read rows of the tables before the swap commits nothing (its checkpoint's
-- compare-and-set names the generation too), even when the position happens to be equal.
ALTER TABLE projection_checkpoints ADD COLUMN IF NOT EXISTS generation BIGINT NOT NULL DEFAULT 0;

-- Where `cqrs-demo projections rebuild` builds a projection's tables afresh, under the same
-- names, while the live ones keep answering; swapped into public in one transaction.
CREATE SCHEMA IF NOT EXISTS projection_rebuild;
