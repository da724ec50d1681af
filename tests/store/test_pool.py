"""The pool after a PostgreSQL restart: no request meets a connection the server closed; a
statement the server refused is not an outage."""

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
