-- projection_insert_user_summaries: a batch's new rows of user_order_summaries (users'
-- first orders), as one JSON array of objects (totals as strings: exact), in one
-- statement. A row that is there already is a unique violation: the batch and its
-- checkpoint are not written.
INSERT INTO user_order_summaries (user_id, orders_placed, orders_cancelled, open_orders,
                                  open_total, last_order_at)
SELECT *
FROM json_to_recordset(%(rows)s::json) AS r (
    user_id text, orders_placed bigint, orders_cancelled bigint, open_orders bigint,
    open_total numeric, last_order_at timestamptz)
