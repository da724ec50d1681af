-- The floor projector's statements (tests/bench/floor_projector.py), in parts: a statement is
-- "page", then the part of its projection (none to pass over the events), then "result".
-- One statement is one batch of one projection, in one transaction, as the projector's are.
-- For the create benchmark's load only: a page that holds any event but OrderCreated is not
-- applied (nothing written, the checkpoint not moved), and the caller stops there.

-- part: page
-- The feed after the projection's checkpoint, as read_feed.sql reads it, and the checkpoint
-- moved to its last event.
WITH page AS (
    SELECT e.transaction_id, e.id, e.event_type, e.payload, e.occurred_on
    FROM events e
    WHERE (e.transaction_id, e.id) > (%(transaction_id)s::xid8, %(event_number)s::bigint)
      AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY e.transaction_id, e.id
    LIMIT %(limit)s
),
last AS (
    SELECT transaction_id, id FROM page ORDER BY transaction_id DESC, id DESC LIMIT 1
),
moved AS (
    UPDATE projection_checkpoints AS c
    SET transaction_id = last.transaction_id, event_number = last.id,
        events_applied = c.events_applied + (SELECT count(*) FROM page), updated_at = now()
    FROM last
    WHERE c.projection = %(projection)s
      AND NOT EXISTS (SELECT FROM page WHERE event_type <> 'OrderCreated')
    RETURNING 1
)

-- part: orders
-- Each order, placed.
, written AS (
    INSERT INTO orders (order_id, user_id, product_id, quantity, total_price, status, placed_at)
    SELECT payload->>'order_id', payload->>'user_id', payload->>'product_id',
           (payload->>'quantity')::integer, (payload->>'total_price')::numeric, 'placed',
           occurred_on
    FROM page
    WHERE EXISTS (SELECT FROM moved)
)

-- part: user_order_summaries
-- Each user's summary, added to (an upsert: the load's users are new, but need not be), and
-- each order open.
, written AS (
    INSERT INTO user_order_summaries AS s (user_id, orders_placed, orders_cancelled,
                                           open_orders, open_total, last_order_at)
    SELECT payload->>'user_id', count(*), 0, count(*),
           sum((payload->>'total_price')::numeric), max(occurred_on)
    FROM page
    WHERE EXISTS (SELECT FROM moved)
    GROUP BY payload->>'user_id'
    ON CONFLICT (user_id) DO UPDATE
    SET orders_placed = s.orders_placed + excluded.orders_placed,
        open_orders = s.open_orders + excluded.open_orders,
        open_total = s.open_total + excluded.open_total,
        last_order_at = greatest(s.last_order_at, excluded.last_order_at)
),
opened AS (
    INSERT INTO user_order_summary_open_orders (order_id, user_id, total_price)
    SELECT payload->>'order_id', payload->>'user_id', (payload->>'total_price')::numeric
    FROM page
    WHERE EXISTS (SELECT FROM moved)
)

-- part: result
-- Events read, checkpoints moved (0 or 1), and the position moved to.
SELECT (SELECT count(*) FROM page), (SELECT count(*) FROM moved),
       (SELECT transaction_id::text FROM last), (SELECT id FROM last)
