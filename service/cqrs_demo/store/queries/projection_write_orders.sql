-- projection_write_orders: a batch's changed rows of orders, one array per column, in one
-- statement (each order id once).
INSERT INTO orders (order_id, user_id, product_id, quantity, total_price, status, placed_at,
                    cancelled_at, reason)
SELECT *
FROM unnest(%(order_id)s::text[], %(user_id)s::text[], %(product_id)s::text[],
            %(quantity)s::integer[], %(total_price)s::numeric[], %(status)s::text[],
            %(placed_at)s::timestamptz[], %(cancelled_at)s::timestamptz[], %(reason)s::text[])
ON CONFLICT (order_id) DO UPDATE
SET user_id = excluded.user_id,
    product_id = excluded.product_id,
    quantity = excluded.quantity,
    total_price = excluded.total_price,
    status = excluded.status,
    placed_at = excluded.placed_at,
    cancelled_at = excluded.cancelled_at,
    reason = excluded.reason
