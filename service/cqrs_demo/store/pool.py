"""The connection pool, and the one place where driver errors become store errors."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from cqrs_demo.store.errors import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

Pool = AsyncConnectionPool[AsyncConnection[tuple[object, ...]]]


def create_pool(conninfo: str, *, min_size: int, max_size: int, timeout: float) -> Pool:
    """A closed pool of autocommit connections; open it with ``await pool.open(wait=True)``.

    Autocommit: every append is one statement (see ``append_events``), so one round trip is
    one transaction. ``timeout`` bounds how long a request waits for a connection.
    """
    return AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        open=False,
        kwargs={"autocommit": True, "application_name": "cqrs-demo"},
        check=_drop_if_closed,
        name="cqrs-demo",
    )


async def _drop_if_closed(conn: AsyncConnection[tuple[object, ...]]) -> None:
    """Read what the server sent an idle connection; raise if it closed it.

    A restarted or stopped server closes idle connections, but the client notices only when
    it next reads. Reading here, without a round trip, lets the pool discard such a
    connection before a request uses it (a raise makes the pool drop it and try another).
    """
    conn.pgconn.consume_input()
    if conn.pgconn.status != psycopg.pq.ConnStatus.OK:
        raise psycopg.OperationalError("connection closed by the server")


@asynccontextmanager
async def connection(pool: Pool) -> AsyncIterator[AsyncConnection[tuple[object, ...]]]:
    """Lend a connection from ``pool``, translating driver errors.

    Waits at most the pool's timeout. Raises ``StoreUnavailable`` when no connection was free
    in time or the database cannot be reached, ``StoreError`` for any other driver error.
    """
    try:
        async with pool.connection() as conn:
            yield conn
    except PoolTimeout as error:
        raise StoreUnavailable(
            f"no database connection free after {pool.timeout:.2f} sec"
        ) from error
    except psycopg.OperationalError as error:
        raise StoreUnavailable(f"database unavailable: {type(error).__name__}") from error
    except psycopg.Error as error:
        sqlstate = error.sqlstate or "none"
        raise StoreError(f"database error {type(error).__name__} (SQLSTATE {sqlstate})") from error
