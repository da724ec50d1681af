-- read_user_orders: up to %(fetch)s of a user's orders, newest first by (placed_at,
-- order_id), those after the key (%(after_placed_at)s, %(after_order_id)s) of the page before
-- (NULLs: from the newest), with the checkpoint of projection %(projection)s in the same
-- snapshot. One row with NULL order columns when there is no order; the checkpoint's columns
-- are NULL when the projection never ran.
-- Each status is a range of orders_by_user_and_status (user_id, status, placed_at DESC,
-- order_id DESC) walked from the key down, at most %(fetch)s rows each; the two are merged
-- in order (a Merge Append), so a page costs its own rows, however deep in the list. The
-- statuses are the two the orders table allows (its CHECK).
WITH page AS (
    SELECT *
    FROM (
        (SELECT order_id, user_id, product_id, quantity, total_price, status,
                placed_at, cancelled_at, reason
         FROM orders
         WHERE user_id = %(user_id)s AND status = 'placed'
           AND (placed_at, order_id) < (coalesce(%(after_placed_at)s::timestamptz, 'infinity'),
                                        coalesce(%(after_order_id)s::text, ''))
         ORDER BY placed_at DESC, order_id DESC
         LIMIT %(fetch)s)
        UNION ALL
        (SELECT order_id, user_id, product_id, quantity, total_price, status,
                placed_at, cancelled_at, reason
         FROM orders
         WHERE user_id = %(user_id)s AND status = 'cancelled'
           AND (placed_at, order_id) < (coalesce(%(after_placed_at)s::timestamptz, 'infinity'),
                                        coalesce(%(after_order_id)s::text, ''))
         ORDER BY placed_at DESC, order_id DESC
         LIMIT %(fetch)s)
    ) AS both_statuses
    ORDER BY placed_at DESC, order_id DESC
    LIMIT %(fetch)s
)
SELECT checkpoint.transaction_id::text, checkpoint.event_number, page.*
FROM (VALUES (%(projection)s::text)) AS wanted (projection)
LEFT JOIN projection_checkpoints AS checkpoint USING (projection)
LEFT JOIN page ON true
ORDER BY page.placed_at DESC, page.order_id DESC
