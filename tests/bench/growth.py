"""Filling the events table with synthetic events quickly, in the shape of real ones.

Each synthetic event is an ``OrderCreated`` as the service writes it: payload and metadata
of the same keys and about the same sizes (about 500 bytes a row), a UUIDv7-like event id
older than any new one, users with four orders each (versions 1..4) whose ids are spread
over the same key space as the load script's. Loading drops the table's indexes and
constraints, inserts with ``INSERT ... SELECT generate_series`` (one statement per half
million rows, two sessions at once), then builds them again from the definitions it read before
dropping them, and checks that they came back identical; then VACUUM ANALYZE and a
CHECKPOINT, so that the runs that follow start from a settled table.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

CHUNK_ROWS = 500_000
# Event n happened at (now - 11.6 days) + n * 10 ms: room for 100M events in the past.
EPOCH_BEFORE_NOW_MS = 1_000_000_000

# Event n is version n % 4 + 1 of user n / 4 (one md5 per user spreads the user ids).
# Its ids are UUIDv7-like: the event's millisecond, then n (unique, no randomness needed).
_INSERT = b"""
INSERT INTO events (aggregate_id, event_type, payload, occurred_on, version, created_at,
                    event_id, metadata)
SELECT u.user_id, 'OrderCreated',
       jsonb_build_object(
           'event_type', 'OrderCreated', 'order_id', e.order_id, 'user_id', u.user_id,
           'product_id', 'prod_456', 'quantity', 2, 'total_price', 150.0,
           'occurred_on', e.at::text),
       e.at, v.version, e.at, e.event_id,
       jsonb_build_object('command_id', e.command_id, 'correlation_id', e.command_id)
FROM generate_series(%(first_user)s::bigint, %(last_user)s::bigint) AS user_number,
     LATERAL (SELECT 'u-' || substr(md5(user_number::text), 1, 8) || '-preload-' || user_number
              AS user_id) AS u,
     generate_series(1, 4) AS v (version),
     LATERAL (SELECT user_number * 4 + v.version - 1 AS n) AS numbered,
     LATERAL (SELECT %(start_ms)s::bigint + numbered.n * 10 AS ms) AS millis,
     LATERAL (SELECT to_timestamp(millis.ms / 1000.0) AS at,
                     lpad(to_hex(millis.ms), 12, '0') AS time_hex,
                     lpad(to_hex(numbered.n), 15, '0') AS number_hex) AS t,
     LATERAL (SELECT (t.time_hex || '70008' || t.number_hex)::uuid AS event_id,
                     (t.time_hex || '70019' || t.number_hex)::uuid::text AS order_id,
                     (t.time_hex || '7002a' || t.number_hex)::uuid::text AS command_id,
                     t.at) AS e
"""

_DEFINITIONS = b"""
SELECT 'constraint', conname, pg_get_constraintdef(oid)
FROM pg_constraint WHERE conrelid = 'events'::regclass AND contype IN ('p', 'u')
UNION ALL
SELECT 'index', indexname, indexdef FROM pg_indexes
WHERE tablename = 'events' AND schemaname = current_schema() AND indexname NOT IN (
    SELECT conname FROM pg_constraint WHERE conrelid = 'events'::regclass)
ORDER BY 1, 2
"""


@dataclass(frozen=True, slots=True)
class LoadTiming:
    rows: int
    insert_seconds: float
    index_seconds: float
    vacuum_seconds: float

    @property
    def total_seconds(self) -> float:
        return self.insert_seconds + self.index_seconds + self.vacuum_seconds

    def __str__(self) -> str:
        return (
            f"loaded {self.rows:,} rows in {self.total_seconds:.0f} s (insert "
            f"{self.insert_seconds:.0f} s, indexes {self.index_seconds:.0f} s, "
            f"vacuum analyze + checkpoint {self.vacuum_seconds:.0f} s)"
        )


def load_events(url: str, first: int, count: int) -> LoadTiming:
    """Insert ``count`` synthetic events numbered from ``first`` (numbers never reused);
    both multiples of four (whole users)."""
    if first % 4 or count % 4:
        raise ValueError(f"load whole users: {first} and {count} must be multiples of 4")
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.monotonic()
        definitions = drop_indexes(conn)
        _insert_in_parallel(url, first, count)
        inserted = time.monotonic()
        restore_indexes(conn, definitions)
        indexed = time.monotonic()
        settle(conn)
        done = time.monotonic()
    return LoadTiming(count, inserted - started, indexed - inserted, done - indexed)


@contextmanager
def rebuilt_indexes(conn: psycopg.Connection[tuple[object, ...]]) -> Iterator[None]:
    """Inserts into ``events`` without its indexes and constraints, then with them rebuilt
    and the table settled (``drop_indexes``, ``restore_indexes``, ``settle``)."""
    definitions = drop_indexes(conn)
    yield
    restore_indexes(conn, definitions)
    settle(conn)


def drop_indexes(conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Drop the indexes and constraints of ``events``; their definitions, to restore."""
    definitions = conn.execute(_DEFINITIONS).fetchall()
    conn.execute(b"SET maintenance_work_mem = '1GB'")
    conn.execute(b"SET max_parallel_maintenance_workers = 2")
    for kind, name, _ in definitions:
        if kind == "constraint":
            conn.execute(f'ALTER TABLE events DROP CONSTRAINT "{name}"'.encode())
        else:
            conn.execute(f'DROP INDEX "{name}"'.encode())
    return definitions


def restore_indexes(
    conn: psycopg.Connection[tuple[object, ...]], definitions: list[tuple[object, ...]]
) -> None:
    """Build again what ``drop_indexes`` dropped, and check that it came back identical."""
    for kind, name, definition in definitions:
        if kind == "constraint":
            conn.execute(f'ALTER TABLE events ADD CONSTRAINT "{name}" {definition}'.encode())
        else:
            conn.execute(str(definition).encode())
    if conn.execute(_DEFINITIONS).fetchall() != definitions:
        raise RuntimeError("the indexes of events did not come back as they were")


def settle(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """VACUUM ANALYZE and CHECKPOINT: the runs that follow start from a settled table."""
    conn.execute(b"VACUUM ANALYZE events")
    conn.execute(b"CHECKPOINT")


def _insert_in_parallel(url: str, first: int, count: int, sessions: int = 2) -> None:
    chunks = [
        (start, min(start + CHUNK_ROWS, first + count) - 1)
        for start in range(first, first + count, CHUNK_ROWS)
    ]
    start_ms = int(time.time() * 1000) - EPOCH_BEFORE_NOW_MS
    failures: list[BaseException] = []

    def work(mine: list[tuple[int, int]]) -> None:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                for low, high in mine:
                    params = {"first_user": low // 4, "last_user": high // 4, "start_ms": start_ms}
                    conn.execute(_INSERT, params)
        except BaseException as error:
            failures.append(error)

    workers = [
        threading.Thread(target=work, args=(chunks[index::sessions],)) for index in range(sessions)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise failures[0]
