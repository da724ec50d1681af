"""Forced races: a transaction of the test holds rows that appends then wait for, and the
test waits, by asking PostgreSQL, until they really do. Shared by the store, API and
deployment tests, so that each forced race is proven to have happened the same way.

A race that is only hoped for proves nothing the sequential case would not: every helper
here either makes the waiting happen or fails naming what never showed up.
"""

import asyncio

import psycopg

# A row the appends need: its version is taken, not committed, so theirs wait on it.
HOLD_VERSION = (
    "INSERT INTO events (aggregate_id, event_type, payload, version) VALUES (%s, %s, %s, %s)"
)
# The sessions of the service's pools (every pool sets this application_name).
STORE_SESSIONS = "application_name = 'cqrs-demo'"
WAITING_ON_A_LOCK = f"{STORE_SESSIONS} AND wait_event_type = 'Lock'"
# Not merely waiting: blocked by a lock someone still holds (a session just woken by a
# transaction that ended still shows wait_event_type 'Lock' for a moment).
BLOCKED_BY_OTHERS = f"{STORE_SESSIONS} AND cardinality(pg_blocking_pids(pid)) > 0"
POLL_SECONDS = 0.05
POLL_TIMEOUT = 15.0


async def hold_versions(
    conninfo: str,
    streams: tuple[str, ...],
    version: int = 1,
    *,
    event_type: str = "Held",
    payload: str = "{}",
) -> psycopg.AsyncConnection[object]:
    """An open transaction that has inserted ``version`` of each of ``streams`` (an event of
    ``event_type`` with the JSON ``payload``) and not committed: appends that need that
    version wait for it inside the database until it ends (rolled back: they go ahead;
    committed: they conflict, and a reader of the stream then sees the event)."""
    holder = await psycopg.AsyncConnection.connect(conninfo)
    for stream in streams:
        await holder.execute(HOLD_VERSION, [stream, event_type, payload, version])
    return holder


async def hold_version_one(conninfo: str, *streams: str) -> psycopg.AsyncConnection[object]:
    """``hold_versions`` of version 1: every append to ``streams`` waits for it."""
    return await hold_versions(conninfo, streams)


async def wait_for_sessions(
    conninfo: str, count: int, where: str, *, exactly: bool = False, what: str
) -> None:
    """Until at least (or ``exactly``) ``count`` sessions on the database of ``conninfo``
    satisfy ``where`` (a fixed SQL condition, never built from values), polling every 50 ms for at
    most 15 s; then raises AssertionError saying that ``what`` never showed up."""
    sql = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        f" AND pid <> pg_backend_pid() AND {where}"
    )
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + POLL_TIMEOUT
        found = None
        while loop.time() < deadline:
            cursor = await conn.execute(sql)
            row = await cursor.fetchone()
            found = None if row is None else row[0]
            if found is not None and (found == count if exactly else found >= count):
                return
            await asyncio.sleep(POLL_SECONDS)
    raise AssertionError(
        f"{what}: {count} never showed up within {POLL_TIMEOUT:.0f} s (last seen: {found})"
    )


async def wait_for_blocked_appends(conninfo: str, count: int) -> None:
    """Until ``count`` of the store's sessions wait on a lock (at most 15 s)."""
    await wait_for_sessions(conninfo, count, WAITING_ON_A_LOCK, what="appends waiting on a lock")


async def wait_until_blocked_by_others(conninfo: str, count: int) -> None:
    """Until exactly ``count`` of the store's sessions wait for a lock someone holds (at
    most 15 s); unlike ``wait_for_blocked_appends``, not one just woken by a transaction
    that ended."""
    await wait_for_sessions(
        conninfo, count, BLOCKED_BY_OTHERS, exactly=True, what="appends blocked by others"
    )


async def blocked_statement(conninfo: str) -> str:
    """The text of the one statement of the store that waits on a lock."""
    await wait_for_blocked_appends(conninfo, 1)
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        cursor = await conn.execute(f"SELECT query FROM pg_stat_activity WHERE {WAITING_ON_A_LOCK}")
        [(text,)] = await cursor.fetchall()
    assert isinstance(text, str)
    return text


async def transactions_of(conninfo: str, streams: list[str]) -> dict[str, int]:
    """The id of the transaction that wrote each stream's (single) event, by stream."""
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        cursor = await conn.execute(
            "SELECT aggregate_id, transaction_id::text::bigint FROM events"
            " WHERE aggregate_id = ANY(%s)",
            [streams],
        )
        return {str(stream): int(xid) for stream, xid in await cursor.fetchall()}
