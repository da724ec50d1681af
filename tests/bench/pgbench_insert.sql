-- pgbench script for tests/bench: one event row per transaction, as the seed's store writes
-- it, on a stream of its own. The rate pgbench reaches with it is the ceiling PostgreSQL
-- itself sets on this machine for one durable commit per event.
\set r random(1, 1000000000)
INSERT INTO events (aggregate_id, event_type, payload, occurred_on, version)
VALUES ('pgb-' || :client_id || '-' || :r, 'OrderCreated',
        '{"event_type":"OrderCreated","order_id":"01a21669-7fd6-74d6-8083-2a971638f5de","user_id":"u","product_id":"prod_456","quantity":2,"total_price":150.0,"occurred_on":"2026-11-26T00:00:00+00:00"}',
        now(), 1)
ON CONFLICT DO NOTHING;
