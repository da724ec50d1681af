-- What the user_order_summaries projection keeps besides its read model: the price of every
-- open order, since a cancel does not carry the price that leaves the user's open total.
-- Written in the same transaction as the summaries and the checkpoint; not for queries.
CREATE TABLE IF NOT EXISTS user_order_summary_open_orders (
    order_id VARCHAR(255) PRIMARY KEY,
    user_id VARCHAR(255) NOT NULL,
    total_price NUMERIC NOT NULL
);
