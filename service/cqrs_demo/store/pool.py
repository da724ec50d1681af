"""The connection pool, and the one place where driver errors become store errors."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from cqrs_demo.store.errors import StoreError, StoreUnavailable

Connection = AsyncConnection[tuple[object, ...]]

# How long a request waits for a connection while the server is known to be unreachable:
# long enough to pick up a connection the pool re-established, short enough that clients
# get their 503 at once instead of one full pool timeout each.
UNREACHABLE_WAIT_SECONDS = 0.5


class Database:
    """A pool of autocommit connections to the event store's database.

    Autocommit: every append is one statement (see ``append_events``), so one round trip is
    one transaction. ``timeout`` bounds how long a request waits for a connection; while the
    server is unreachable the wait is ``UNREACHABLE_WAIT_SECONDS`` instead. The pool
    reconnects in the background, so the service recovers by itself.
    """

    def __init__(self, conninfo: str, *, min_size: int, max_size: int, timeout: float) -> None:
        self.pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            kwargs={"autocommit": True, "application_name": "cqrs-demo"},
            check=self._drop_if_closed,
            name="cqrs-demo",
        )
        self.unreachable = False

    async def open(self, *, wait_seconds: float) -> None:
        """Open the pool and wait until ``min_size`` connections are made; raise
        ``StoreUnavailable`` when that does not happen within ``wait_seconds``."""
        try:
            await self.pool.open(wait=True, timeout=wait_seconds)
        except (PoolTimeout, psycopg.OperationalError) as error:
            await self.pool.close()
            raise StoreUnavailable(f"no connection within {wait_seconds:.0f} s") from error

    async def close(self) -> None:
        await self.pool.close()

    async def _drop_if_closed(self, conn: Connection) -> None:
        """Read what the server sent an idle connection; raise if it closed it.

        A restarted or stopped server closes idle connections, but the client notices only
        when it next reads. Reading here, without a round trip, lets the pool discard such a
        connection before a request uses it (a raise makes the pool drop it and try another),
        and tells the requests that follow not to wait the full timeout.
        """
        try:
            conn.pgconn.consume_input()
            if conn.pgconn.status != psycopg.pq.ConnStatus.OK:
                raise psycopg.OperationalError("connection closed by the server")
        except psycopg.OperationalError:
            self.unreachable = True
            raise

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """Lend a connection, translating driver errors.

        Raises ``StoreUnavailable`` when no connection was free in time or the server cannot
        be reached (then the outcome of a statement that was running is unknown), and
        ``StoreError`` for any other driver error.
        """
        timeout = UNREACHABLE_WAIT_SECONDS if self.unreachable else self.pool.timeout
        try:
            async with self.pool.connection(timeout=timeout) as conn:
                self.unreachable = False
                yield conn
        except PoolTimeout as error:
            self.unreachable = self.pool.get_stats().get("pool_size", 0) == 0
            raise StoreUnavailable(
                f"no database connection free after {timeout:.2f} sec"
            ) from error
        except psycopg.OperationalError as error:
            self.unreachable = True
            raise StoreUnavailable(f"database unavailable: {type(error).__name__}") from error
        except psycopg.Error as error:
            sqlstate = error.sqlstate or "none"
            raise StoreError(
                f"database error {type(error).__name__} (SQLSTATE {sqlstate})"
            ) from error
