-- projection_insert_orders: a batch's new rows of orders (orders placed), as one JSON array
-- of objects (prices as strings: exact), in one statement. A row that is there already is
-- a unique violation: the batch and its checkpoint are not written.
INSERT INTO orders (order_id, user_id, product_id, quantity, total_price, status, placed_at,
                    cancelled_at, reason)
SELECT *
FROM json_to_recordset(%(rows)s::json) AS r (
    order_id text, user_id text, product_id text, quantity integer, total_price numeric,
    status text, placed_at timestamptz, cancelled_at timestamptz, reason text)
