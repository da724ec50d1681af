-- projection_write_user_summaries: a batch's changed rows of user_order_summaries, one
-- array per column, in one statement (each user once).
INSERT INTO user_order_summaries (user_id, orders_placed, orders_cancelled, open_orders,
                                  open_total, last_order_at)
SELECT *
FROM unnest(%(user_id)s::text[], %(orders_placed)s::bigint[], %(orders_cancelled)s::bigint[],
            %(open_orders)s::bigint[], %(open_total)s::numeric[],
            %(last_order_at)s::timestamptz[])
ON CONFLICT (user_id) DO UPDATE
SET orders_placed = excluded.orders_placed,
    orders_cancelled = excluded.orders_cancelled,
    open_orders = excluded.open_orders,
    open_total = excluded.open_total,
    last_order_at = excluded.last_order_at
