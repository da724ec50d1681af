-- read_user_summary: a user's summary and the checkpoint of projection %(projection)s, in one
-- statement, so in one snapshot. Always one row: the checkpoint's columns are NULL when the
-- projection never ran, the summary's when the user has no order in the read model.
SELECT checkpoint.transaction_id::text, checkpoint.event_number,
       summary.orders_placed, summary.orders_cancelled, summary.open_orders,
       summary.open_total, summary.last_order_at
FROM (VALUES (%(projection)s::text)) AS wanted (projection)
LEFT JOIN projection_checkpoints AS checkpoint USING (projection)
LEFT JOIN user_order_summaries AS summary ON summary.user_id = %(user_id)s
