-- projection_load_user_summaries: the rows of user_order_summaries a batch needs, by user.
SELECT user_id, orders_placed, orders_cancelled, open_orders, open_total, last_order_at
FROM user_order_summaries
WHERE user_id = ANY(%(keys)s::text[])
