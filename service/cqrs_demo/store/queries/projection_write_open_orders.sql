-- projection_write_open_orders: a batch's open orders: those it placed inserted (a JSON array
-- of objects, prices as strings), those it cancelled (%(deleted)s) deleted, in one
-- statement. Each order id is in one list at most (an order placed and cancelled within the
-- batch is only deleted, which deletes nothing).
WITH deleted AS (
    DELETE FROM user_order_summary_open_orders WHERE order_id = ANY(%(deleted)s::text[])
)
INSERT INTO user_order_summary_open_orders (order_id, user_id, total_price)
SELECT *
FROM json_to_recordset(%(rows)s::json) AS r (order_id text, user_id text, total_price numeric)
