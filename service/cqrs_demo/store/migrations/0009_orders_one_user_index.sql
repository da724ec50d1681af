-- orders keeps one index for a user's orders: orders_by_user_and_status (user_id, status,
-- placed_at DESC, order_id DESC). A page of every status merges the two statuses' ranges of
-- it (read_user_orders.sql), so orders_by_user (user_id, placed_at DESC, order_id DESC) was
-- a second copy of every row's keys that the projector wrote with each order: a third of
-- its write-ahead log for orders, which every command's commit then flushed with its own
-- (docs/performance.md, "Create with the projector running").
DROP INDEX IF EXISTS orders_by_user;
