-- projection_load_open_orders: the open orders (with their price) a batch needs, by order id.
SELECT order_id, user_id, total_price
FROM user_order_summary_open_orders
WHERE order_id = ANY(%(keys)s::text[])
