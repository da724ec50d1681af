"""A history for the read side's benchmarks: orders placed and cancelled by many users,
inserted with SQL in the shapes the service writes.

``users`` users act in ``steps``: in each step every user writes one event (so a user's
stream holds versions 1..steps, and a batch of the feed meets thousands of users, as
under a busy service). Four steps in five place an order (``OrderCreated``), the fifth
cancels the order the user placed three steps before (``OrderCancelled``): 80% creates,
20% cancels of orders placed long before (3 x users events earlier, in other batches of
the feed). Payload and metadata keys are those of ``OrderCreated.payload()``,
``OrderCancelled.payload()`` and ``handlers.append.envelope``; prices vary, with cents.
Ids are UUID-shaped and unique (made of the event's number, not random). Transactions
hold 20 events, from two sessions at once (``insert_history``).

``sql_read_models`` computes the same read models with one ``INSERT ... SELECT`` per table
over ``events``: what PostgreSQL alone does, the limit a rebuild is compared with, and the
reference its rows are checked against.
"""

import threading
import time
from dataclasses import dataclass

import psycopg

from tests.bench.growth import rebuilt_indexes

STEPS = 100  # events per user

# Every sessions-th event from the session-th (event n: step n / users, user n % users; with
# an even number of users and two sessions, each session writes users of its own), the
# session's first last + 1 of them, per_transaction in each transaction, as the write side's
# group commit writes a few commands at a time.
_PROCEDURE = b"""
CREATE PROCEDURE pg_temp.insert_history(session bigint, sessions bigint, last bigint,
                                        users bigint, start_ms bigint, per_transaction bigint)
LANGUAGE plpgsql AS $procedure$
DECLARE
    low bigint := 0;
BEGIN
    WHILE low <= last LOOP
        INSERT INTO events (aggregate_id, event_type, payload, occurred_on, version,
                            created_at, event_id, metadata)
        SELECT k.user_id, CASE WHEN k.creates THEN 'OrderCreated' ELSE 'OrderCancelled' END,
               CASE WHEN k.creates THEN jsonb_build_object(
                       'event_type', 'OrderCreated', 'order_id', k.order_id,
                       'user_id', k.user_id, 'product_id', 'prod_' || k.n % 997,
                       'quantity', 1 + k.n % 5,
                       'total_price', round(1 + (k.n % 20000) / 100.0, 2),
                       'occurred_on', to_char(k.at AT TIME ZONE 'UTC',
                                              'YYYY-MM-DD"T"HH24:MI:SS.US+00:00'))
                    ELSE jsonb_build_object(
                       'event_type', 'OrderCancelled', 'order_id', k.cancelled,
                       'user_id', k.user_id, 'reason', 'changed my mind',
                       'cancelled_on', to_char(k.at AT TIME ZONE 'UTC',
                                               'YYYY-MM-DD"T"HH24:MI:SS.US+00:00'))
               END,
               k.at, k.step + 1, k.at,
               (k.hex_ms || '7008' || lpad(to_hex(k.n), 16, '0'))::uuid,
               jsonb_build_object('command_id', k.command_id, 'correlation_id', k.command_id)
        FROM generate_series(low, least(low + per_transaction - 1, last)) AS m,
             LATERAL (SELECT m * sessions + session AS n) AS numbered,
             LATERAL (SELECT n / users AS step, n % users AS u) AS p,
             LATERAL (
                 SELECT n, p.step, p.step % 5 <> 4 AS creates,
                        'u-' || substr(md5(p.u::text), 1, 8) || '-read-' || p.u AS user_id,
                        to_timestamp((start_ms + n) / 1000.0) AS at,
                        lpad(to_hex(start_ms + n), 12, '0') AS hex_ms,
                        (lpad(to_hex(p.u), 12, '0') || '7019'
                         || lpad(to_hex(p.step), 16, '0'))::uuid::text AS order_id,
                        (lpad(to_hex(p.u), 12, '0') || '7019'
                         || lpad(to_hex(p.step - 3), 16, '0'))::uuid::text AS cancelled,
                        (lpad(to_hex(p.u), 12, '0') || '702a'
                         || lpad(to_hex(n), 16, '0'))::uuid::text AS command_id
             ) AS k
        ORDER BY k.n;
        COMMIT;
        low := low + per_transaction;
    END LOOP;
END
$procedure$
"""
_CALL = b"CALL pg_temp.insert_history(%s, %s, %s, %s, %s, %s)"

# The read models of the events above, each in one statement, into tables LIKE the live
# ones in the schema bench_sql.
_SQL_TABLES = ("orders", "user_order_summaries", "user_order_summary_open_orders")
_SQL_READ_MODELS = (
    b"""
INSERT INTO bench_sql.orders
SELECT c.payload->>'order_id', c.payload->>'user_id', c.payload->>'product_id',
       (c.payload->>'quantity')::int, (c.payload->>'total_price')::numeric,
       CASE WHEN x.id IS NULL THEN 'placed' ELSE 'cancelled' END, c.occurred_on,
       x.occurred_on, x.payload->>'reason'
FROM events c
LEFT JOIN events x ON x.event_type = 'OrderCancelled'
                  AND x.payload->>'order_id' = c.payload->>'order_id'
WHERE c.event_type = 'OrderCreated'
""",
    b"""
INSERT INTO bench_sql.user_order_summaries
SELECT c.payload->>'user_id', count(*), count(x.id), count(*) - count(x.id),
       coalesce(sum((c.payload->>'total_price')::numeric) FILTER (WHERE x.id IS NULL), 0),
       max(c.occurred_on)
FROM events c
LEFT JOIN events x ON x.event_type = 'OrderCancelled'
                  AND x.payload->>'order_id' = c.payload->>'order_id'
WHERE c.event_type = 'OrderCreated'
GROUP BY c.payload->>'user_id'
""",
    b"""
INSERT INTO bench_sql.user_order_summary_open_orders
SELECT c.payload->>'order_id', c.payload->>'user_id', (c.payload->>'total_price')::numeric
FROM events c
WHERE c.event_type = 'OrderCreated'
  AND NOT EXISTS (SELECT FROM events x WHERE x.event_type = 'OrderCancelled'
                                         AND x.payload->>'order_id' = c.payload->>'order_id')
""",
)
_DIFFERENCE = """
SELECT (SELECT count(*) FROM (TABLE public.{table} EXCEPT TABLE bench_sql.{table}) AS a)
     + (SELECT count(*) FROM (TABLE bench_sql.{table} EXCEPT TABLE public.{table}) AS b)
"""


@dataclass(frozen=True, slots=True)
class History:
    """What was inserted: ``events`` events of ``users`` users, in ``seconds``."""

    events: int
    users: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"inserted {self.events:,} events ({self.users:,} users x {STEPS} events, 80% "
            f"OrderCreated, 20% OrderCancelled) in {self.seconds:.0f} s (SQL, indexes rebuilt "
            "after, then VACUUM ANALYZE and CHECKPOINT)"
        )


def insert_history(url: str, events: int, *, per_transaction: int = 20) -> History:
    """Insert about ``events`` events (whole users: a multiple of ``STEPS``) into an empty
    ``events`` table, ``per_transaction`` in each transaction, in two sessions at once (so
    that transactions interleave as concurrent commands' do). The preparation commits
    without waiting for the WAL flush (``synchronous_commit = off``): it is not measured."""
    users = max(2, events // STEPS // 2 * 2)
    total = users * STEPS
    start_ms = int(time.time() * 1000) - 10 * total
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn, rebuilt_indexes(conn):
        failures: list[BaseException] = []

        def work(session: int) -> None:
            try:
                with psycopg.connect(url, autocommit=True) as connection:
                    connection.execute(b"SET synchronous_commit = off")
                    connection.execute(_PROCEDURE)
                    call = (session, 2, total // 2 - 1, users, start_ms, per_transaction)
                    connection.execute(_CALL, call)
            except BaseException as error:
                failures.append(error)

        workers = [threading.Thread(target=work, args=(session,)) for session in (0, 1)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if failures:
            raise failures[0]
    return History(total, users, time.monotonic() - started)


def sql_read_models(url: str) -> float:
    """Compute the read models with SQL alone into ``bench_sql``; the seconds it took."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(b"DROP SCHEMA IF EXISTS bench_sql CASCADE")
        conn.execute(b"CREATE SCHEMA bench_sql")
        for table in _SQL_TABLES:
            conn.execute(f"CREATE TABLE bench_sql.{table} (LIKE public.{table})".encode())
        conn.execute(b"CHECKPOINT")
        started = time.monotonic()
        with conn.transaction():
            for statement in _SQL_READ_MODELS:
                conn.execute(statement)
        return time.monotonic() - started


def differences(url: str, tables: tuple[str, ...]) -> dict[str, int]:
    """Rows that differ between each of ``tables`` and its SQL reference (both ways)."""
    with psycopg.connect(url, autocommit=True) as conn:
        found = {}
        for table in tables:
            row = conn.execute(_DIFFERENCE.format(table=table).encode()).fetchone()
            assert row is not None
            found[table] = int(row[0])
        return found
