-- projection_write_orders: a batch's changed rows of orders, as one JSON array of objects
-- (prices as strings: exact), in one statement (each order id once).
INSERT INTO orders (order_id, user_id, product_id, quantity, total_price, status, placed_at,
                    cancelled_at, reason)
SELECT *
FROM json_to_recordset(%(rows)s::json) AS r (
    order_id text, user_id text, product_id text, quantity integer, total_price numeric,
    status text, placed_at timestamptz, cancelled_at timestamptz, reason text)
ON CONFLICT (order_id) DO UPDATE
SET user_id = excluded.user_id,
    product_id = excluded.product_id,
    quantity = excluded.quantity,
    total_price = excluded.total_price,
    status = excluded.status,
    placed_at = excluded.placed_at,
    cancelled_at = excluded.cancelled_at,
    reason = excluded.reason
