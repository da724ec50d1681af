"""The pool after a PostgreSQL restart: no request meets a connection the server closed; a
statement the server refused is not an outage."""

import psycopg
import pytest

from cqrs_demo.localdb import LocalPostgres
from cqrs_demo.store.errors import StoreError
from cqrs_demo.store.pool import Database

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
