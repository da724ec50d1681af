-- projection_write_open_orders: a batch's open orders: those it placed inserted, those it
-- cancelled (%(deleted)s) deleted, in one statement. Each order id is in one list at most
-- (an order placed and cancelled within the batch is only deleted, which deletes nothing).
WITH deleted AS (
    DELETE FROM user_order_summary_open_orders WHERE order_id = ANY(%(deleted)s::text[])
)
INSERT INTO user_order_summary_open_orders (order_id, user_id, total_price)
SELECT * FROM unnest(%(order_id)s::text[], %(user_id)s::text[], %(total_price)s::numeric[])
