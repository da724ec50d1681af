-- read_order: one order of the read model and the checkpoint of projection %(projection)s,
-- in one statement, so in one snapshot: the row is as of that position exactly (the
-- projector writes rows and checkpoint in one transaction). Always one row: the checkpoint's
-- columns are NULL when the projection never ran, the order's when it is not there.
SELECT checkpoint.transaction_id::text, checkpoint.event_number,
       o.order_id, o.user_id, o.product_id, o.quantity, o.total_price, o.status,
       o.placed_at, o.cancelled_at, o.reason
FROM (VALUES (%(projection)s::text)) AS wanted (projection)
LEFT JOIN projection_checkpoints AS checkpoint USING (projection)
LEFT JOIN orders AS o ON o.order_id = %(order_id)s
