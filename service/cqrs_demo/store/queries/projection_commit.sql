-- projection_commit: a batch of any projection, in one statement (so one transaction and one
-- round trip): move %(projection)s's checkpoint from the position its batch was read after to
-- the last event applied, stopped there if an event could not be applied (%(error)s not
-- null; a rebuild's checkpoint stays 'rebuilding' otherwise), and only if it moved, write
-- the batch's rows. A checkpoint that moved meanwhile (another projector took over, an
-- operator stopped it, a rebuild was swapped in) is not updated, and nothing is written.
-- Each JSON array holds one kind of row, as objects named by column (numbers with a
-- fraction as strings: exact); an empty array writes nothing. New rows are inserted (a row that is there already is a unique violation: the
-- statement, checkpoint included, writes nothing), rows that were there before the batch
-- are updated whole, and the open orders of %(closed)s are deleted. Returns the number of
-- checkpoints moved: 1, or 0.
-- The checkpoint's UPDATE takes its row lock first; every other part reads its RETURNING
-- row, so none writes before it has.
WITH moved AS (
    UPDATE projection_checkpoints
    SET transaction_id = %(to_transaction_id)s::xid8,
        event_number = %(to_event_number)s,
        events_applied = events_applied + %(applied)s,
        state = CASE WHEN %(error)s::text IS NULL THEN state ELSE 'stopped' END,
        error = %(error)s::text,
        failed_event_id = %(failed_event_id)s::uuid,
        failed_event_type = %(failed_event_type)s::text,
        updated_at = now()
    WHERE projection = %(projection)s
      AND state IN ('running', 'rebuilding')
      AND (transaction_id, event_number) = (%(from_transaction_id)s::xid8, %(from_event_number)s)
      AND generation = %(generation)s
    RETURNING 1
),
new_orders AS (
    INSERT INTO orders (order_id, user_id, product_id, quantity, total_price, status,
                        placed_at, cancelled_at, reason)
    SELECT r.*
    FROM json_to_recordset(%(new_orders)s::json) AS r (
        order_id text, user_id text, product_id text, quantity integer, total_price numeric,
        status text, placed_at timestamptz, cancelled_at timestamptz, reason text)
    WHERE EXISTS (SELECT FROM moved)
),
changed_orders AS (
    UPDATE orders AS o
    SET user_id = r.user_id, product_id = r.product_id, quantity = r.quantity,
        total_price = r.total_price, status = r.status, placed_at = r.placed_at,
        cancelled_at = r.cancelled_at, reason = r.reason
    FROM json_to_recordset(%(changed_orders)s::json) AS r (
        order_id text, user_id text, product_id text, quantity integer, total_price numeric,
        status text, placed_at timestamptz, cancelled_at timestamptz, reason text)
    WHERE o.order_id = r.order_id AND EXISTS (SELECT FROM moved)
),
new_summaries AS (
    INSERT INTO user_order_summaries (user_id, orders_placed, orders_cancelled, open_orders,
                                      open_total, last_order_at)
    SELECT r.*
    FROM json_to_recordset(%(new_summaries)s::json) AS r (
        user_id text, orders_placed bigint, orders_cancelled bigint, open_orders bigint,
        open_total numeric, last_order_at timestamptz)
    WHERE EXISTS (SELECT FROM moved)
),
changed_summaries AS (
    UPDATE user_order_summaries AS s
    SET orders_placed = r.orders_placed, orders_cancelled = r.orders_cancelled,
        open_orders = r.open_orders, open_total = r.open_total,
        last_order_at = r.last_order_at
    FROM json_to_recordset(%(changed_summaries)s::json) AS r (
        user_id text, orders_placed bigint, orders_cancelled bigint, open_orders bigint,
        open_total numeric, last_order_at timestamptz)
    WHERE s.user_id = r.user_id AND EXISTS (SELECT FROM moved)
),
opened AS (
    INSERT INTO user_order_summary_open_orders (order_id, user_id, total_price)
    SELECT r.*
    FROM json_to_recordset(%(opened)s::json) AS r (
        order_id text, user_id text, total_price numeric)
    WHERE EXISTS (SELECT FROM moved)
),
closed AS (
    DELETE FROM user_order_summary_open_orders
    WHERE order_id = ANY(%(closed)s::text[]) AND EXISTS (SELECT FROM moved)
)
SELECT count(*) FROM moved
