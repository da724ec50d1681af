"""Several servers in one string are tried at once (``store/connect.py``): a server that
answers nothing does not hold up the one that takes the session, and a list where none
takes it fails soon after every server that answered refused, naming each."""

import asyncio
import socket
from collections.abc import Iterator

import psycopg
import pytest

from cqrs_demo.localdb import LocalPostgres
from cqrs_demo.store.connect import SILENT_GRACE_SECONDS, RacingConnection
from cqrs_demo.store.pool import Database
from tests.support import Replicated, replicated

pytestmark = pytest.mark.anyio

# Far longer than any wait below: a connection that waited for the silent server first,
# as libpq does, would fail the test's own limit.
SILENT_TIMEOUT = 20


@pytest.fixture(scope="module")
def servers() -> Iterator[Replicated]:
    with replicated() as both:
        yield both


@pytest.fixture
def silent() -> Iterator[int]:
    """A port that takes TCP connections and never answers (a host without power answers
    nothing at all; to libpq both are a server that does not answer until its timeout)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


def url(servers: Replicated, *order: LocalPostgres | int, role: str = "read-write") -> str:
    """``servers.url`` of ``order`` (a port: the silent one), waiting long on each."""
    return servers.url(*order, role=role) + f"&connect_timeout={SILENT_TIMEOUT}"


async def in_recovery(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> object:
    cursor = await conn.execute("SELECT pg_is_in_recovery()")
    row = await cursor.fetchone()
    return row[0] if row else None


async def test_a_silent_server_first_does_not_hold_up_the_primary(
    servers: Replicated, silent: int
) -> None:
    conninfo = url(servers, silent, servers.standby, servers.primary)
    conn = await asyncio.wait_for(RacingConnection.connect(conninfo, autocommit=True), 5)
    async with conn:
        assert await in_recovery(conn) is False
        assert conn.info.port == servers.primary.port


async def test_the_pool_opens_past_a_silent_server(servers: Replicated, silent: int) -> None:
    database = Database(url(servers, silent, servers.primary), min_size=2, max_size=2, timeout=5)
    await database.open(wait_seconds=5)
    try:
        async with database.connection() as conn:
            assert conn.info.port == servers.primary.port
    finally:
        await database.close()


async def test_none_taking_the_session_fails_soon_naming_each_server(
    servers: Replicated, silent: int
) -> None:
    conninfo = url(servers, silent, servers.standby)
    with pytest.raises(psycopg.OperationalError) as raised:
        await asyncio.wait_for(RacingConnection.connect(conninfo), 5)
    message = str(raised.value)
    assert message.startswith("none of 2 servers took a read-write session"), message
    assert f"127.0.0.1:{silent}: no answer within {SILENT_GRACE_SECONDS} s" in message
    assert f"127.0.0.1:{servers.standby.port}: " in message


async def test_prefer_standby_takes_the_standby_and_else_the_primary(
    servers: Replicated, silent: int
) -> None:
    both = url(servers, servers.primary, silent, servers.standby, role="prefer-standby")
    async with await asyncio.wait_for(RacingConnection.connect(both), 5) as conn:
        assert await in_recovery(conn) is True
    primary_only = url(servers, silent, servers.primary, role="prefer-standby")
    async with await asyncio.wait_for(RacingConnection.connect(primary_only), 5) as conn:
        assert await in_recovery(conn) is False


async def test_one_server_is_connected_to_as_psycopg_does(servers: Replicated) -> None:
    async with await RacingConnection.connect(servers.primary.url()) as conn:
        assert conn.info.port == servers.primary.port
    with pytest.raises(psycopg.OperationalError, match=r"read-only|hot standby|not read-write"):
        await RacingConnection.connect(url(servers, servers.standby))
