-- projection_write_user_summaries: a batch's changed rows of user_order_summaries, as one
-- JSON array of objects (totals as strings: exact), in one statement (each user once).
INSERT INTO user_order_summaries (user_id, orders_placed, orders_cancelled, open_orders,
                                  open_total, last_order_at)
SELECT *
FROM json_to_recordset(%(rows)s::json) AS r (
    user_id text, orders_placed bigint, orders_cancelled bigint, open_orders bigint,
    open_total numeric, last_order_at timestamptz)
ON CONFLICT (user_id) DO UPDATE
SET orders_placed = excluded.orders_placed,
    orders_cancelled = excluded.orders_cancelled,
    open_orders = excluded.open_orders,
    open_total = excluded.open_total,
    last_order_at = excluded.last_order_at
