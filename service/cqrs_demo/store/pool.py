"""The connection pool, and the one place where driver errors become store errors."""

import select
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from cqrs_demo.store.connect import RacingConnection
from cqrs_demo.store.errors import DuplicateRow, RecoveryConflict, StoreError, StoreUnavailable
from cqrs_demo.store.sql import query

Connection = AsyncConnection[tuple[object, ...]]

# How long a request waits for a connection while the server is known to be unreachable:
# long enough to pick up a connection the pool re-established, short enough that clients
# get their 503 at once instead of one full pool timeout each.
UNREACHABLE_WAIT_SECONDS = 0.5
# How long the pool keeps retrying to replace one lost connection before it gives the slot
# up. psycopg_pool retries after 1 s, 2 s, 4 s, ...: kept up through a long outage, those
# waits left the service refusing requests for seconds after the server was back. Given up
# after two tries 0.1 s apart instead, a slot is tried again as soon as a request waits for
# one (the pool grows on demand, at once), so the first request after an outage, waiting
# its UNREACHABLE_WAIT_SECONDS, gets a connection.
RECONNECT_GIVE_UP_SECONDS = 0.1
# A pool that prefers a standby (``target_session_attrs=prefer-standby``: the queries' read
# pool) closes a connection this old or older, as it is given back, when its server is not
# a standby; the pool replaces it, with a standby if one answers. Such a connection was
# made when no standby answered (a standby restarting, say), or its standby was promoted
# under it: without this, the reads stayed on the primary for as long as the connection
# lived, after every standby was back.
STANDBY_RETRY_SECONDS = 10.0
# A request waits for a connection in slices this long, and looks after each whether the
# server has since been found unreachable: one that began waiting before an outage then
# gets its 503 within the short wait too, not after the pool's whole timeout.
WAIT_SLICE_SECONDS = UNREACHABLE_WAIT_SECONDS / 2


class Database:
    """A pool of autocommit connections to the event store's database.

    Autocommit: every append is one statement (see ``append_events``), so one round trip is
    one transaction. ``timeout`` bounds how long a request waits for a connection; while the
    server is unreachable the wait is ``UNREACHABLE_WAIT_SECONDS`` instead. The pool
    reconnects in the background while connections are lost, and on demand once it has
    given them up (``RECONNECT_GIVE_UP_SECONDS``), so the service recovers by itself, with
    the first request after the server is back.

    Every connection writes dates and times as ISO 8601 (``DateStyle``), whatever the
    server's default: the reads run on libpq directly take timestamps as that text.

    ``custom_plans``: the server plans every statement with its values (``plan_cache_mode =
    force_custom_plan``) instead of keeping a generic plan. For pools whose tables start
    empty and grow under them (the projector's, a rebuild's read models): a generic plan is
    made once, at a statement's sixth run on a connection, and kept while it looks no worse
    than a plan made with the values. Made on an empty table, the read models' loads by a
    list of keys (``= ANY(...)``) kept a scan of the whole table, so each batch took longer
    than the one before (see ``docs/performance.md``, "Freshness").

    ``derived_commits``: commits return before their WAL is flushed (``synchronous_commit =
    off``; the WAL writer flushes within a fraction of a second). For pools whose every
    transaction writes data derived from the events with the position it reflects (a
    projection's batch and its checkpoint): a crash of the server may lose the last such
    commits, whole, and the projector applies those events again. Each of them cost a flush
    the commands' commits then waited behind (``docs/performance.md``).

    A pool whose ``conninfo`` prefers a standby (``target_session_attrs=prefer-standby``)
    closes a connection as it is given back when it is ``standby_retry_seconds`` old or
    older (``STANDBY_RETRY_SECONDS``) and its server is not a standby: one made while no
    standby answered, or whose standby was promoted. The pool makes another in the
    background, on a standby if one answers, else on the primary again for as long. The
    server's role is what it reports (``in_hot_standby``, PostgreSQL 14 and later; updated
    with the answer to each statement), read without a round trip.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        min_size: int,
        max_size: int,
        timeout: float,
        custom_plans: bool = False,
        derived_commits: bool = False,
        standby_retry_seconds: float = STANDBY_RETRY_SECONDS,
    ) -> None:
        self.pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            conninfo,
            connection_class=RacingConnection,  # several servers: tried at once
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            reconnect_timeout=RECONNECT_GIVE_UP_SECONDS,
            open=False,
            kwargs={"autocommit": True, "application_name": "cqrs-demo"},
            configure=self._configure,
            name="cqrs-demo",
        )
        self.unreachable = False
        self._settings = _session_settings(custom_plans=custom_plans, derived=derived_commits)
        attributes = psycopg.conninfo.conninfo_to_dict(conninfo).get("target_session_attrs")
        self._prefers_standby = attributes == "prefer-standby"
        self._standby_retry_seconds = standby_retry_seconds
        # When each connection was made (time.monotonic()), for a pool that prefers a standby.
        self._made_at: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()

    async def _configure(self, conn: Connection) -> None:
        """A new connection: its session settings, and when it was made."""
        if self._prefers_standby:
            self._made_at[conn] = time.monotonic()
        await self._settings(conn)

    async def open(self, *, wait_seconds: float) -> None:
        """Open the pool and wait until ``min_size`` connections are made; raise
        ``StoreUnavailable`` when that does not happen within ``wait_seconds``."""
        try:
            await self.pool.open(wait=True, timeout=wait_seconds)
        except (PoolTimeout, psycopg.OperationalError) as error:
            await self.pool.close()
            raise StoreUnavailable(f"no connection within {wait_seconds:.0f} s") from error

    async def close(self, *, wait_seconds: float = 5.0) -> None:
        """Close the pool, waiting ``wait_seconds`` at most for its background tasks (a
        reconnection to a server that answers nothing would hold the close up to its
        ``connect_timeout``); the connections lent out are closed when given back."""
        await self.pool.close(timeout=wait_seconds)

    @staticmethod
    def _closed_by_server(conn: Connection) -> bool:
        """Whether the server closed this idle connection, found without a round trip.

        A restarted or stopped server sends its idle connections a farewell (an error such
        as AdminShutdown) and closes them, but the client notices only when it next reads.
        Two reads: the first takes the farewell, the second meets the end of the stream (a
        live idle connection has nothing to read, and its socket does not block). A socket
        with nothing to read is asked once, without a read: the usual case, one system call.
        """
        waiting = select.poll()
        waiting.register(conn.pgconn.socket, select.POLLIN)
        if not waiting.poll(0):
            return conn.pgconn.status != psycopg.pq.ConnStatus.OK
        try:
            for _ in range(2):
                conn.pgconn.consume_input()
        except psycopg.OperationalError:
            return True
        return conn.pgconn.status != psycopg.pq.ConnStatus.OK

    async def _lend(self, wait_seconds: float) -> Connection:
        """A live connection within ``wait_seconds``, or within ``UNREACHABLE_WAIT_SECONDS``
        once the server is known to be unreachable, even when that became known while this
        request was already waiting (it waits in slices and looks again after each).
        Connections the server closed are dropped at once and the next is tried;
        psycopg_pool's own ``check`` would back off for a second, then two, ... after each,
        longer than a request should wait."""
        started = time.monotonic()
        deadline = started + wait_seconds
        while True:
            if self.unreachable:
                deadline = min(deadline, started + UNREACHABLE_WAIT_SECONDS)
            left = deadline - time.monotonic()
            try:
                conn = await self.pool.getconn(timeout=max(0.0, min(left, WAIT_SLICE_SECONDS)))
            except PoolTimeout:
                if left <= WAIT_SLICE_SECONDS:
                    raise
                continue
            if not self._closed_by_server(conn):
                return conn
            # The server is going or gone: from now on every wait is the short one.
            self.unreachable = True
            await conn.close()
            await self.pool.putconn(conn)  # closed: the pool discards it and reconnects

    def _off_standby_too_long(self, conn: Connection) -> bool:
        """Whether ``conn``, of a pool that prefers a standby, is ``standby_retry_seconds``
        old or older and on a server that is not a standby (it reports ``in_hot_standby``
        off). A pool without that preference never retires a connection here."""
        if not self._prefers_standby:
            return False
        if conn.pgconn.parameter_status(b"in_hot_standby") == b"on":
            return False
        made = self._made_at.setdefault(conn, time.monotonic())
        return time.monotonic() - made >= self._standby_retry_seconds

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """Lend a connection, translating driver errors.

        Raises ``StoreUnavailable`` when no connection was free in time or the server cannot
        be reached (then the outcome of a statement that was running is unknown),
        ``RecoveryConflict`` when a standby cancelled the statement for the replay of the
        primary's changes, and ``StoreError`` for any other driver error.
        """
        timeout = UNREACHABLE_WAIT_SECONDS if self.unreachable else self.pool.timeout
        conn: Connection | None = None
        try:
            conn = await self._lend(timeout)
            try:
                self.unreachable = False
                yield conn
            finally:
                if self._off_standby_too_long(conn):
                    await conn.close()  # the pool replaces it: with a standby, if one answers
                await self.pool.putconn(conn)
        except PoolTimeout as error:
            # No connection at all (not merely none free): unreachable until one is lent.
            # (A reconnection attempt under way counts in pool_size: never reset from here.)
            if self.pool.get_stats().get("pool_size", 0) == 0:
                self.unreachable = True
            if self.unreachable:  # the wait was cut short when that was found (_lend)
                timeout = min(timeout, UNREACHABLE_WAIT_SECONDS)
            raise StoreUnavailable(
                f"no database connection free after {timeout:.2f} sec"
            ) from error
        except psycopg.OperationalError as error:
            if _recovery_conflict(error, conn):
                raise RecoveryConflict(
                    "the standby cancelled the statement: it conflicted with the replay of"
                    f" the primary's changes (SQLSTATE {error.sqlstate})"
                ) from error
            if _statement_refused(error):
                raise _store_error(error) from error
            self.unreachable = True
            raise StoreUnavailable(f"database unavailable: {type(error).__name__}") from error
        except psycopg.Error as error:
            raise _store_error(error) from error


def _session_settings(
    *, custom_plans: bool, derived: bool
) -> Callable[[Connection], Awaitable[None]]:
    """What a new connection runs first: dates and times written as ISO 8601 (the reads on
    libpq take them as text), then the settings ``Database`` was asked for."""
    settings = ["iso_dates"]
    settings += ["plan_with_values"] if custom_plans else []
    settings += ["commit_without_flush"] if derived else []

    async def configure(conn: Connection) -> None:
        for name in settings:
            await conn.execute(query(name))

    return configure


def _statement_refused(error: psycopg.OperationalError) -> bool:
    """A deadlock or serialisation failure (SQLSTATE class 40) or a lock not available
    (55P03) ends one statement; the connection and the server are fine. As ``StoreError``
    the group commit writes each command of the batch alone, instead of answering 503 to all
    and marking the database unreachable."""
    sqlstate = error.sqlstate or ""
    return sqlstate.startswith("40") or sqlstate == "55P03"


def _recovery_conflict(error: psycopg.OperationalError, conn: Connection | None) -> bool:
    """A serialisation failure or deadlock (40001, 40P01) on a server in hot standby: the
    one way a read there fails for the replay (``canceling statement due to conflict with
    recovery``; the message is translated by lc_messages, the server's state is not: it
    reports ``in_hot_standby``, PostgreSQL 14 and later). It may also end the connection
    ("terminating connection ..."): the pool then replaces it."""
    if conn is None or error.sqlstate not in ("40001", "40P01"):
        return False
    return conn.pgconn.parameter_status(b"in_hot_standby") == b"on"


def _store_error(error: psycopg.Error) -> StoreError:
    sqlstate = error.sqlstate or "none"
    kind = DuplicateRow if isinstance(error, psycopg.errors.UniqueViolation) else StoreError
    return kind(f"database error {type(error).__name__} (SQLSTATE {sqlstate})")
