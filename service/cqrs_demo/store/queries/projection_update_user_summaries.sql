-- projection_update_user_summaries: a batch's changed rows of user_order_summaries that were
-- there before it, as one JSON array of objects (totals as strings: exact), each row written
-- whole, in one statement.
UPDATE user_order_summaries AS s
SET orders_placed = r.orders_placed,
    orders_cancelled = r.orders_cancelled,
    open_orders = r.open_orders,
    open_total = r.open_total,
    last_order_at = r.last_order_at
FROM json_to_recordset(%(rows)s::json) AS r (
    user_id text, orders_placed bigint, orders_cancelled bigint, open_orders bigint,
    open_total numeric, last_order_at timestamptz)
WHERE s.user_id = r.user_id
