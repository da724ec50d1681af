"""A pool that prefers a standby (the queries' read pool) comes back to one: a connection
made on the primary while no standby answered, or whose standby was promoted under it, is
replaced as it is given back once it is ``standby_retry_seconds`` old. A pool without that
preference keeps its connections. A real primary and a real streaming standby each."""

import asyncio
import time
from collections.abc import Iterator

import pytest

from cqrs_demo.store.pool import Connection, Database
from tests.support import Replicated, replicated

pytestmark = pytest.mark.anyio

RETRY_SECONDS = 0.5


@pytest.fixture
def servers() -> Iterator[Replicated]:
    """A primary and a standby of the test's own (it stops, starts or promotes them)."""
    with replicated() as pair:
        yield pair


def pool(url: str) -> Database:
    return Database(url, min_size=1, max_size=1, timeout=5.0, standby_retry_seconds=RETRY_SECONDS)


async def lent(database: Database) -> tuple[int, bool]:
    """The backend of the connection the pool lends now, and whether it is on a standby
    (as the server says, after a statement)."""
    async with database.connection() as conn:
        await conn.execute("SELECT 1")
        return conn.pgconn.backend_pid, on_standby(conn)


def on_standby(conn: Connection) -> bool:
    return conn.pgconn.parameter_status(b"in_hot_standby") == b"on"


async def until_on_standby(database: Database, seconds: float) -> int:
    """Lend connections until one is on a standby; its backend. Fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        backend, standby = await lent(database)
        if standby:
            return backend
        assert time.monotonic() < deadline, f"still off a standby after {seconds} s"
        await asyncio.sleep(0.1)


async def test_a_pool_that_fell_back_to_the_primary_moves_to_the_standby_once_it_answers(
    servers: Replicated,
) -> None:
    servers.standby.stop(remove=False)
    database = pool(servers.url(servers.standby, servers.primary, role="prefer-standby"))
    await database.open(wait_seconds=10)
    try:
        _, standby = await lent(database)
        assert not standby  # no standby answered: the primary, for now
        servers.standby.start()
        await until_on_standby(database, RETRY_SECONDS + 10)
    finally:
        await database.close()


async def test_a_connection_whose_standby_is_promoted_is_replaced(servers: Replicated) -> None:
    database = pool(servers.url(servers.standby, role="prefer-standby"))
    await database.open(wait_seconds=10)
    try:
        first = await until_on_standby(database, 5)
        servers.standby.promote()
        assert await lent(database) == (first, False)  # the server says it is a standby no more
        await asyncio.sleep(RETRY_SECONDS)
        await lent(database)  # older than the retry, off a standby: closed as given back
        replaced, standby = await lent(database)
        assert replaced != first
        assert not standby  # no standby is left: a primary again, for as long
    finally:
        await database.close()


async def test_a_pool_without_the_preference_keeps_its_connection_on_the_primary(
    servers: Replicated,
) -> None:
    database = pool(servers.url(servers.primary, role="read-write"))
    await database.open(wait_seconds=10)
    try:
        first, standby = await lent(database)
        assert not standby
        await asyncio.sleep(RETRY_SECONDS * 2)
        assert await lent(database) == (first, False)
        assert await lent(database) == (first, False)
    finally:
        await database.close()
