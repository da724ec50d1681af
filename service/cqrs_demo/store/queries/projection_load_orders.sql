-- projection_load_orders: the rows of orders a batch of events needs, by order id.
SELECT order_id, user_id, product_id, quantity, total_price, status, placed_at, cancelled_at,
       reason
FROM orders
WHERE order_id = ANY(%(keys)s::text[])
