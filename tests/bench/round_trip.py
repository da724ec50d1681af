"""Client CPU per database round trip: psycopg's cursor against ``store.prepared``.

One connection, one statement after another (as for a lone client), under uvloop, to a
private throwaway PostgreSQL (fsync off: the client's CPU is what is measured). The same
prepared statement both ways: ``AsyncConnection.execute`` with ``prepare=True`` and
``fetchall``, and ``PreparedStatement.run``. Prints microseconds of client CPU and of wall
time per round trip, alternating the two ``--rounds`` times.

    .venv/bin/python -m tests.bench.round_trip [--statements N] [--rounds R]
"""

import argparse
import time
from collections.abc import Awaitable, Callable

import psycopg
import uvloop

from cqrs_demo.localdb import LocalPostgres
from cqrs_demo.store.prepared import PreparedStatement

SQL = "SELECT %s::text, length(%s::text)::bigint"
STATEMENT = PreparedStatement(b"bench_echo", b"SELECT $1::text, length($1::text)::bigint")
PARAMETER = "u-12345678-abc-1-77"

Connection = psycopg.AsyncConnection[tuple[object, ...]]


async def via_cursor(conn: Connection) -> None:
    cursor = await conn.execute(SQL, (PARAMETER, PARAMETER), prepare=True)
    await cursor.fetchall()


async def via_prepared(conn: Connection) -> None:
    await STATEMENT.run(conn, [PARAMETER.encode()])


async def per_statement(
    url: str, run: Callable[[Connection], Awaitable[None]], count: int
) -> tuple[float, float]:
    """(CPU, wall) microseconds per round trip, after a warm-up."""
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        for _ in range(200):
            await run(conn)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(count):
            await run(conn)
        return (
            (time.process_time() - cpu) / count * 1e6,
            (time.perf_counter() - wall) / count * 1e6,
        )
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with LocalPostgres() as postgres:
        for round_number in range(1, options.rounds + 1):
            for name, run in (("psycopg cursor", via_cursor), ("store.prepared", via_prepared)):
                cpu, wall = uvloop.run(per_statement(postgres.url(), run, options.statements))
                print(
                    f"round {round_number} {name}: {cpu:.1f} us CPU, {wall:.1f} us wall"
                    f" per round trip ({options.statements} statements)"
                )


if __name__ == "__main__":
    main()
