"""One projector per projection across all hosts: a session-level advisory lock each.

Each projection's lock is held on a connection of its own, for as long as this process is
its projector: when the process dies, or its connection is cut, the server ends the
session and the lock goes with it; a waiting projector takes it at its next try.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg

from cqrs_demo.store.connect import RacingConnection
from cqrs_demo.store.errors import StoreError, StoreUnavailable
from cqrs_demo.store.sql import query


class HeldLock:
    """A projection's lock, held by this process on ``connection``."""

    def __init__(self, connection: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        self._connection = connection

    async def still_held(self) -> bool:
        """Whether the lock's session is alive (one round trip): if not, the lock is gone,
        and another projector may hold it now."""
        try:
            await self._connection.execute(query("projection_ping"))
        except psycopg.Error:
            return False
        return True


class PostgresProjectionLocks:
    """The projections' locks on ``conninfo``'s database; a lock held elsewhere is tried
    again every ``poll_seconds``."""

    def __init__(self, conninfo: str, *, poll_seconds: float) -> None:
        self._conninfo = conninfo
        self._poll_seconds = poll_seconds

    @asynccontextmanager
    async def hold(self, projection: str) -> AsyncIterator[HeldLock]:
        """Wait, without a limit, until this process holds ``projection``'s lock; release it
        (by closing its connection) on leaving. Raises ``StoreUnavailable`` when the database
        cannot be reached and ``StoreError`` for any other driver error; the lock is then not
        held."""
        try:
            connection = await RacingConnection.connect(
                self._conninfo,
                autocommit=True,
                application_name=f"cqrs-demo projector lock {projection}"[:63],
            )
        except psycopg.OperationalError as error:
            raise StoreUnavailable(
                f"cannot connect for the lock of {projection}: {error}"
            ) from None
        try:
            async with connection:
                # The server has no "wait for this lock or that session to end" with a
                # timeout of ours; trying every poll_seconds costs one round trip each.
                while not await self._try(connection, projection):  # noqa: ASYNC110
                    await asyncio.sleep(self._poll_seconds)
                yield HeldLock(connection)
        except psycopg.OperationalError as error:
            raise StoreUnavailable(f"lost the connection of the lock of {projection}") from error
        except psycopg.Error as error:
            raise StoreError(f"the lock of {projection}: {type(error).__name__}") from error

    @staticmethod
    async def _try(
        connection: psycopg.AsyncConnection[tuple[object, ...]], projection: str
    ) -> bool:
        cursor = await connection.execute(query("projection_try_lock"), {"projection": projection})
        row = await cursor.fetchone()
        assert row is not None
        return row[0] is True
