-- projection_update_orders: a batch's changed rows of orders that were there before it
-- (orders cancelled), as one JSON array of objects (prices as strings: exact), each row
-- written whole, in one statement.
UPDATE orders AS o
SET user_id = r.user_id,
    product_id = r.product_id,
    quantity = r.quantity,
    total_price = r.total_price,
    status = r.status,
    placed_at = r.placed_at,
    cancelled_at = r.cancelled_at,
    reason = r.reason
FROM json_to_recordset(%(rows)s::json) AS r (
    order_id text, user_id text, product_id text, quantity integer, total_price numeric,
    status text, placed_at timestamptz, cancelled_at timestamptz, reason text)
WHERE o.order_id = r.order_id
