"""The projector's CPU per event, apart from everything else: a backlog of new orders.

The create benchmark with the projector (``tests/bench/run --projector``) measures what the
projector costs the commands, but in requests/s, which move with the machine's load by
several percent from run to run. This measures the projector alone, in CPU time, which
moves far less: ``--events`` orders placed by as many new users (as the create benchmark's
are: one event, one new user each) are inserted by SQL into a fresh database on a private
PostgreSQL with production settings and ``pg_stat_statements``; then ``cqrs-demo project``
(of ``--tree``, or this checkout) starts and both projections work through them in full
batches, as a busy projector does. Printed per event: the projector process's CPU,
PostgreSQL's (every process of the server, exited backends included), and each statement's
execution time (``pg_stat_statements``), and the WAL it wrote; with ``--wal-records``,
that WAL by kind of record (``pg_waldump --stats=record``). ``--rounds`` repeats it, each on
a new database.

    .venv/bin/python -m tests.bench.projector_cost [--events N] [--rounds R] [--tree TREE]
        [--wal-records]
"""

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.bench.postgres import PROFILING, Database, Server, production_settings
from tests.bench.procs import cpu_seconds
from tests.bench.systems import migrate, start_projector

# OrderCreated events as the service writes them (payload and metadata keys), each of a
# user of its own, inserted in steps of 20,000 rows.
INSERT_ORDERS = """
INSERT INTO events (aggregate_id, event_type, payload, metadata, version, occurred_on)
SELECT 'u-' || md5(n::text), 'OrderCreated',
       jsonb_build_object('event_type', 'OrderCreated', 'order_id', gen_random_uuid()::text,
                          'user_id', 'u-' || md5(n::text), 'product_id', 'prod_456',
                          'quantity', 2, 'total_price', 150.0, 'occurred_on', now()::text),
       jsonb_build_object('correlation_id', gen_random_uuid()::text,
                          'causation_id', gen_random_uuid()::text),
       1, now()
FROM generate_series(%s::int, %s::int) AS n
"""
STEP = 20_000
STATEMENTS = """
SELECT calls, total_exec_time, regexp_replace(left(query, 60), '\\s+', ' ', 'g')
FROM pg_stat_statements
WHERE query NOT LIKE '%%pg_stat_statements%%' AND query NOT LIKE '%%events_applied) FROM%%'
ORDER BY total_exec_time DESC LIMIT 6
"""


def insert_backlog(database: Database, events: int) -> None:
    with psycopg.connect(database.url, autocommit=True) as conn:
        for first in range(1, events + 1, STEP):
            conn.execute(INSERT_ORDERS, (first, min(events, first + STEP - 1)))
        conn.execute("VACUUM ANALYZE events")
        conn.execute("CHECKPOINT")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")


def applied_by_both(database: Database) -> int:
    """The events the slower of the two projections has applied (0 before both started)."""
    with psycopg.connect(database.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT CASE WHEN count(*) = 2 THEN min(events_applied) ELSE 0 END"
            " FROM projection_checkpoints"
        ).fetchone()
    assert row is not None
    return int(row[0])


def wal_lsn(database: Database) -> str:
    with psycopg.connect(database.url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def wal_bytes(database: Database, start: str, end: str) -> int:
    return database.scalar("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)::bigint", end, start)


# A line of pg_waldump --stats=record: Type, N (%), Record size (%), FPI size (%), Combined
# size (%).
_WALDUMP_ROW = re.compile(
    r"(?P<kind>\S+)\s+(?P<count>\d+)\s+\(\s*[\d.]+\)\s+\d+\s+\(\s*[\d.]+\)"
    r"\s+\d+\s+\(\s*[\d.]+\)\s+(?P<combined>\d+)\s+\("
)


def wal_records(server: Server, start: str, end: str, events: int) -> list[str]:
    """The WAL between ``start`` and ``end`` by kind of record, largest first: bytes per
    event (records and full-page images together), records per event."""
    output = subprocess.run(
        [
            str(server.local.bindir / "pg_waldump"),
            "--stats=record",
            "-p",
            str(server.local.datadir / "pg_wal"),
            "-s",
            start,
            "-e",
            end,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    kinds = []
    for line in output.stdout.splitlines():
        if row := _WALDUMP_ROW.match(line):
            kind, count, size = row.group("kind", "count", "combined")
            kinds.append((int(size), int(count), kind))
    if not kinds:
        raise RuntimeError(f"pg_waldump: {output.stderr.strip()}")
    return [
        f"    {size / events:7.1f} B/event  {count / events:5.2f} records/event  {kind}"
        for size, count, kind in sorted(kinds, reverse=True)[:10]
    ]


def server_cpu(server: Server) -> float:
    return sum(sum(cpu_seconds(pid, with_reaped_children=True)) for pid in server.pids())


def one_round(server: Server, number: int, events: int, tree: Path | None, *, records: bool) -> str:
    database = server.create_database(f"projector_cost_{number}")
    try:
        migrate(database.url, tree)
        insert_backlog(database, events)
        wal_start = wal_lsn(database)
        with tempfile.TemporaryDirectory() as workdir:
            postgres_before, started = server_cpu(server), time.monotonic()
            projector = start_projector(database.url, Path(workdir), tree)
            try:
                while applied_by_both(database) < events:
                    time.sleep(0.05)
                projector_cpu = sum(cpu_seconds(projector.process.pid))
                postgres_cpu, seconds = (
                    server_cpu(server) - postgres_before,
                    time.monotonic() - started,
                )
                wal_end = wal_lsn(database)
            finally:
                projector.stop()
        written = wal_bytes(database, wal_start, wal_end)
        lines = [
            f"round {number}: {events:,} events in {seconds:.1f} s ({events / seconds:,.0f}/s,"
            f" start included): projector {projector_cpu / events * 1e6:.1f} µs CPU/event,"
            f" PostgreSQL {postgres_cpu / events * 1e6:.1f} µs CPU/event,"
            f" WAL {written / events:,.0f} B/event"
        ]
        if records:
            with psycopg.connect(database.url, autocommit=True) as conn:
                # A transaction that writes WAL, committed with the flush: the projector's
                # commits do not wait for it, and pg_waldump reads only what is on disk.
                conn.execute("SELECT pg_logical_emit_message(true, 'projector_cost', 'end')")
            lines += wal_records(server, wal_start, wal_end, events)
        with psycopg.connect(database.url, autocommit=True) as conn:
            for calls, total_ms, text in conn.execute(STATEMENTS):
                lines.append(
                    f"    {total_ms / events * 1e3:6.2f} µs/event  {calls:5d} calls  {text}"
                )
        return "\n".join(lines)
    finally:
        database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tree", type=Path, help="the projector's code from TREE/service")
    parser.add_argument(
        "--wal-records", action="store_true", help="the WAL by kind of record (pg_waldump)"
    )
    options = parser.parse_args()
    server = Server({**production_settings(), **PROFILING})
    try:
        for number in range(1, options.rounds + 1):
            report = one_round(
                server, number, options.events, options.tree, records=options.wal_records
            )
            print(report, flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
