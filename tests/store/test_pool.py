"""The pool after a PostgreSQL restart: no request meets a connection the server closed; a
request already waiting when the server goes gets its answer within the short wait; a
statement the server refused is not an outage."""

import asyncio
import time

import psycopg
import pytest

from cqrs_demo.localdb import LocalPostgres
from cqrs_demo.store.errors import StoreError, StoreUnavailable
from cqrs_demo.store.pool import UNREACHABLE_WAIT_SECONDS, Database

pytestmark = pytest.mark.anyio


async def test_idle_connections_closed_by_a_restart_are_never_lent() -> None:
    with LocalPostgres() as postgres:
        database = Database(postgres.url(), min_size=4, max_size=4, timeout=5)
        await database.open(wait_seconds=10)
        try:
            postgres.stop(remove=False)
            postgres.start()
            for _ in range(12):  # more than the pool holds: every connection is tried
                async with database.connection() as conn:
                    cursor = await conn.execute("SELECT 1")
                    assert await cursor.fetchone() == (1,)
        finally:
            await database.close()


async def test_a_request_waiting_when_the_server_stops_fails_within_the_short_wait() -> None:
    """Every connection busy, one more request waiting with the whole pool timeout ahead of
    it: the server stopping ends the busy ones, which marks it unreachable, and the waiting
    request must then give up within the short wait, not at its pool timeout (it used to,
    as it had begun waiting before the outage was known)."""
    pool_timeout = 8.0
    with LocalPostgres() as postgres:
        database = Database(postgres.url(), min_size=2, max_size=2, timeout=pool_timeout)
        await database.open(wait_seconds=10)
        try:

            async def busy() -> None:
                async with database.connection() as conn:
                    await conn.execute("SELECT pg_sleep(60)")

            async def waiting() -> None:
                async with database.connection():
                    pass

            holders = [asyncio.create_task(busy()) for _ in range(2)]
            await asyncio.sleep(0.5)  # both connections lent and asleep on the server
            waiter = asyncio.create_task(waiting())
            await asyncio.sleep(0.5)
            assert not waiter.done()
            assert not database.unreachable
            await asyncio.to_thread(postgres.stop, remove=False)
            stopped = time.monotonic()
            for task in holders:
                with pytest.raises(StoreUnavailable, match="database unavailable"):
                    await task
            assert database.unreachable
            with pytest.raises(StoreUnavailable, match="no database connection free"):
                await waiter
            late = time.monotonic() - stopped
            # The short wait plus one slice, with room for a loaded machine: far from the
            # pool timeout the request had ahead of it.
            assert late < 4 * UNREACHABLE_WAIT_SECONDS, f"gave up {late:.2f} s after the stop"
        finally:
            await database.close()


@pytest.mark.parametrize("sqlstate", ["40P01", "40001", "55P03"])
async def test_a_deadlock_or_lock_failure_is_a_store_error_not_an_outage(
    database: Database, sqlstate: str
) -> None:
    """PostgreSQL ends the statement, not the connection: the batch is split and retried
    command by command (``StoreError``), no 503 for everyone, no 'unreachable' fast path."""
    with pytest.raises(StoreError, match=f"SQLSTATE {sqlstate}"):
        async with database.connection() as conn:
            await conn.execute(
                f"DO $$ BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = '{sqlstate}'; END $$"
            )
    assert not database.unreachable
    async with database.connection() as conn:
        cursor = await conn.execute("SELECT 1")
        assert await cursor.fetchone() == (1,)


SETTINGS = (
    "SELECT current_setting('plan_cache_mode'), current_setting('synchronous_commit'),"
    " current_setting('datestyle')"
)


@pytest.mark.parametrize(
    ("options", "asked"),
    [
        ({}, {}),
        ({"custom_plans": True}, {0: "force_custom_plan"}),
        ({"derived_commits": True}, {1: "off"}),
        ({"custom_plans": True, "derived_commits": True}, {0: "force_custom_plan", 1: "off"}),
    ],
)
async def test_each_connection_has_the_session_settings_asked_for_and_no_other(
    fresh_database_url: str, options: dict[str, bool], asked: dict[int, str]
) -> None:
    async with await psycopg.AsyncConnection.connect(fresh_database_url) as plain:
        # The database's defaults, made unlike what may be asked for (the test server's own
        # synchronous_commit is off), and not ISO dates.
        for setting in ("synchronous_commit = on", "plan_cache_mode = auto", "datestyle = German"):
            await plain.execute(
                f"DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET {setting}',"
                " current_database()); END $$"
            )
    defaults = ("auto", "on", "ISO, DMY")  # ISO dates always: the text reads need them
    expected = tuple(asked.get(index, default) for index, default in enumerate(defaults))
    database = Database(fresh_database_url, min_size=2, max_size=2, timeout=5, **options)
    await database.open(wait_seconds=10)
    try:
        for _ in range(3):  # both connections, in turn
            async with database.connection() as conn:
                cursor = await conn.execute(SETTINGS)
                assert await cursor.fetchone() == expected
    finally:
        await database.close()
