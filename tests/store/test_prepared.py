"""A statement run on libpq directly: prepared where it runs, errors as psycopg raises them,
commands larger than the socket takes at once, and a cancelled wait that leaves no
connection half-way through a statement."""

import asyncio

import psycopg
import pytest

from cqrs_demo.store.errors import StoreError
from cqrs_demo.store.pool import Database
from cqrs_demo.store.prepared import PreparedStatement, positional

pytestmark = pytest.mark.anyio

ECHO = PreparedStatement(b"test_echo", b"SELECT $1::text, length($1::text)::bigint, NULL::text")


async def test_a_statement_is_prepared_where_it_first_runs_and_again_if_forgotten(
    database: Database,
) -> None:
    async with database.connection() as conn:
        assert await ECHO.run(conn, [b"caf\xc3\xa9"]) == [(b"caf\xc3\xa9", b"4", None)]
        assert await prepared_names(conn) == ["test_echo"]
        await conn.execute("DEALLOCATE ALL")  # as a server-side reset would
        assert await ECHO.run(conn, [b"again"]) == [(b"again", b"5", None)]
        assert await prepared_names(conn) == ["test_echo"]


async def test_a_refused_statement_raises_psycopgs_error_and_the_connection_goes_on(
    database: Database,
) -> None:
    divide = PreparedStatement(b"test_divide", b"SELECT 1 / $1::int")
    async with database.connection() as conn:
        with pytest.raises(psycopg.errors.DivisionByZero, match="division by zero"):
            await divide.run(conn, [b"0"])
        assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert await divide.run(conn, [b"1"]) == [(b"1",)]
    with pytest.raises(StoreError, match=r"DivisionByZero \(SQLSTATE 22012\)"):
        async with database.connection() as conn:
            await divide.run(conn, [b"0"])


async def test_a_value_with_a_nul_byte_is_refused_before_it_is_sent(database: Database) -> None:
    # Sent, libpq would cut it at the NUL (a C string): "a" would be written for "a\0b".
    async with database.connection() as conn:
        with pytest.raises(psycopg.DataError, match="cannot contain NUL"):
            await ECHO.run(conn, [b"a\x00b"])
        assert await ECHO.run(conn, [b"a"]) == [(b"a", b"1", None)]
    with pytest.raises(StoreError, match="DataError"):
        async with database.connection() as conn:
            await ECHO.run(conn, [b"a\x00b"])


async def test_a_statement_that_does_not_prepare_raises_its_error(database: Database) -> None:
    broken = PreparedStatement(b"test_broken", b"SELECT * FROM no_such_table WHERE a = $1")
    async with database.connection() as conn:
        with pytest.raises(psycopg.errors.UndefinedTable, match="no_such_table"):
            await broken.run(conn, [b"1"])
        assert await ECHO.run(conn, [b"x"]) == [(b"x", b"1", None)]


async def test_a_command_larger_than_the_socket_takes_is_sent_whole(database: Database) -> None:
    large = b"x" * (32 << 20)  # far more than a socket's send buffer
    async with database.connection() as conn:
        assert await ECHO.run(conn, [large]) == [(large, b"%d" % len(large), None)]


async def test_a_cancelled_wait_closes_the_connection_and_the_pool_replaces_it(
    database: Database,
) -> None:
    sleep = PreparedStatement(b"test_sleep", b"SELECT pg_sleep($1::float8)")
    async with database.connection() as conn:
        running = asyncio.ensure_future(sleep.run(conn, [b"5"]))
        await asyncio.sleep(0.2)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert conn.closed
    for _ in range(6):  # more than the pool holds: none of them is the closed one
        async with database.connection() as conn:
            assert await ECHO.run(conn, [b"y"]) == [(b"y", b"1", None)]


async def prepared_names(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> list[str]:
    cursor = await conn.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'test%'")
    return [str(row[0]) for row in await cursor.fetchall()]


def test_psycopg_placeholders_become_libpqs_and_a_mismatch_is_refused() -> None:
    sql = b"SELECT %(a)s, %(b)s::int, %(a)s, 'x%%'"
    assert positional(sql, ["b", "a"]) == b"SELECT $2, $1::int, $2, 'x%'"
    with pytest.raises(ValueError, match=r"placeholder 'c' is not among \['a'\]"):
        positional(b"SELECT %(c)s", ["a"])
    with pytest.raises(ValueError, match=r"no placeholder for \['b'\]"):
        positional(b"SELECT %(a)s", ["a", "b"])
