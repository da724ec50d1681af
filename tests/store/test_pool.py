"""The pool after a PostgreSQL restart: no request meets a connection the server closed."""

import pytest

from cqrs_demo.localdb import LocalPostgres
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
