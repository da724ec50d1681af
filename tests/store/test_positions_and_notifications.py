"""Every append answers with its last event's feed position, and every transaction that
appends notifies ``EVENTS_CHANNEL`` once, at commit; both write paths, and a replay.

Tests run one at a time and nothing else writes meanwhile, so a listener on the session
database hears exactly what the test wrote.
"""

import json
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from functools import partial

import psycopg
import pytest

from cqrs_demo.domain.errors import ExpectedVersionMismatch
from cqrs_demo.domain.ids import uuid7
from cqrs_demo.ports import Appended, IdempotencyKey, Position
from cqrs_demo.store import plpgsql_append, set_based_append
from cqrs_demo.store.events import PostgresEventStore
from cqrs_demo.store.notifications import EVENTS_CHANNEL
from cqrs_demo.store.pending import PendingAppend
from cqrs_demo.store.pool import Database
from cqrs_demo.store.sql import database_functions, migrations
from tests.store.conftest import RETENTION
from tests.store.streams import new_stream, order, position_of

pytestmark = pytest.mark.anyio

Outcomes = list[Appended | Exception]
Write = Callable[[Sequence[PendingAppend]], Coroutine[object, object, Outcomes]]
# Long enough for a notification of a committed transaction to arrive over loopback.
QUIET_SECONDS = 0.5


@pytest.fixture(params=["set-based", "plpgsql"])
def write(database: Database, request: pytest.FixtureRequest) -> Write:
    """A write path's ``write`` on the test's pool (``set_based_append.write`` sends a
    batch of one through its lone statement, larger ones through its batch statement)."""
    if request.param == "set-based":
        return partial(set_based_append.write, database)
    return partial(plpgsql_append.write, database, idempotency_retention=RETENTION)


def command(stream: str, expected_version: int | None = None, events: int = 1) -> PendingAppend:
    return PendingAppend(
        stream, [order(stream) for _ in range(events)], expected_version, {}, None, {}
    )


@pytest.fixture
async def listener(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[object]]:
    """A session of its own that LISTENs on the channel, as a projector would."""
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
    yield conn
    await conn.close()


async def heard(listener: psycopg.AsyncConnection[object]) -> list[str]:
    """The payloads of the notifications that arrive within ``QUIET_SECONDS``."""
    return [note.payload async for note in listener.notifies(timeout=QUIET_SECONDS)]


async def test_an_appended_command_answers_its_event_position(
    write: Write, database_url: str
) -> None:
    streams = [new_stream() for _ in range(3)]
    outcomes = await write([command(stream) for stream in streams])
    positions = []
    for outcome in outcomes:
        assert isinstance(outcome, Appended)
        assert outcome.position == await position_of(database_url, outcome.event_ids[-1])
        positions.append(outcome.position)
    # One batch, one transaction: the same transaction id, one row id after another.
    assert len({position.transaction_id for position in positions}) == 1
    assert len(set(positions)) == 3
    [alone] = await write([command(new_stream())])  # a batch of one: the lone statement
    assert isinstance(alone, Appended)
    assert alone.position == await position_of(database_url, alone.event_ids[-1])
    assert alone.position > max(positions)


async def test_a_command_of_several_events_answers_the_last_ones_position(
    store: PostgresEventStore, database_url: str
) -> None:
    stream = new_stream()
    appended = await store.append_events(
        stream, [order(stream) for _ in range(3)], expected_version=None, metadata={}
    )
    positions = [await position_of(database_url, event_id) for event_id in appended.event_ids]
    assert positions == sorted(positions)
    assert appended.position == positions[-1]


async def test_a_replay_answers_the_first_commands_position(
    store: PostgresEventStore, database_url: str
) -> None:
    stream = new_stream()
    idempotency = IdempotencyKey(f"key-{uuid7().hex}", "hash")
    events = [order(stream), order(stream)]

    async def append() -> Appended:
        return await store.append_events(
            stream, events, expected_version=None, metadata={}, idempotency=idempotency
        )

    first = await append()
    await store.append_events(stream, [order(stream)], expected_version=None, metadata={})
    replayed = await append()
    assert replayed.replayed
    assert replayed.position == first.position
    assert first.position == await position_of(database_url, first.event_ids[-1])
    recorded = await store.recorded_outcome(idempotency)
    assert recorded is not None
    assert recorded.position == first.position


async def test_a_committed_batch_notifies_once(
    write: Write, listener: psycopg.AsyncConnection[object]
) -> None:
    taken = new_stream()
    await write([command(taken)])
    assert await heard(listener) == [""]
    # Three appended and one refused in one batch: one transaction, one notification.
    outcomes = await write([command(new_stream()) for _ in range(3)] + [command(taken, 0)])
    assert isinstance(outcomes[-1], ExpectedVersionMismatch)
    assert await heard(listener) == [""]
    await write([command(new_stream())])
    await write([command(new_stream())])
    assert await heard(listener) == ["", ""]


async def test_a_batch_that_appends_nothing_notifies_nothing(
    write: Write, listener: psycopg.AsyncConnection[object]
) -> None:
    taken = new_stream()
    await write([command(taken)])
    assert await heard(listener) == [""]
    outcomes = await write([command(taken, 0), command(new_stream(), 5)])
    assert all(isinstance(outcome, ExpectedVersionMismatch) for outcome in outcomes)
    assert await heard(listener) == []
    [refused] = await write([command(taken, 0)])  # a batch of one: the lone statement
    assert isinstance(refused, ExpectedVersionMismatch)
    assert await heard(listener) == []


async def test_a_refused_command_of_several_events_notifies_nothing(
    store: PostgresEventStore, listener: psycopg.AsyncConnection[object]
) -> None:
    stream = new_stream()
    await store.append_events(stream, [order(stream)], expected_version=None, metadata={})
    assert await heard(listener) == [""]
    with pytest.raises(ExpectedVersionMismatch):
        await store.append_events(
            stream, [order(stream), order(stream)], expected_version=0, metadata={}
        )
    assert await heard(listener) == []


async def test_a_replay_notifies_nothing(
    store: PostgresEventStore, listener: psycopg.AsyncConnection[object]
) -> None:
    stream = new_stream()
    idempotency = IdempotencyKey(f"key-{uuid7().hex}", "hash")
    for _ in range(2):
        await store.append_events(
            stream, [order(stream)], expected_version=None, metadata={}, idempotency=idempotency
        )
    assert await heard(listener) == [""]


async def test_the_release_before_reads_the_new_function_as_it_read_the_old(
    fresh_database_url: str,
) -> None:
    # The previous release's statement, prepared on its connection while the function has
    # its six result columns; then this release's migrate replaces the function, and the
    # previous release goes on calling it with the statement it prepared.
    (first_version,) = (m for m in migrations() if m.name == "0004_append_events_function")
    (function,) = (f for f in database_functions() if f.name == "append_events")
    async with await psycopg.AsyncConnection.connect(fresh_database_url, autocommit=True) as old:
        await old.execute("DROP FUNCTION append_events(JSONB, INTERVAL)")
        await old.execute(first_version.sql)
        assert await previous_release_appends(old, "old-1") == ("appended", 0, 1, 6)
        async with (
            await psycopg.AsyncConnection.connect(fresh_database_url) as migrating,
            migrating.transaction(),
        ):
            await migrating.execute(function.sql)
        assert await previous_release_appends(old, "old-2") == ("appended", 0, 1, 6)
        cursor = await old.execute("SELECT count(*) FROM pg_proc WHERE proname = 'append_events'")
        assert await cursor.fetchone() == (1,)


async def previous_release_appends(
    conn: psycopg.AsyncConnection[tuple[object, ...]], stream: str
) -> tuple[object, ...]:
    """One event appended with the previous release's statement (prepared on ``conn``):
    its outcome, both versions, and how many columns it read."""
    statement = (
        "SELECT command, outcome, based_on_version, stream_version, event_ids, result"
        " FROM append_events(%(batch)s::jsonb, %(idempotency_retention)s)"
    )
    event = {
        "event_id": str(uuid7()),
        "event_type": "OrderCreated",
        "occurred_on": "2026-01-01T00:00:00Z",
        "payload": {},
    }
    batch = json.dumps([{"stream": stream, "metadata": {}, "events": [event]}])
    params = {"batch": batch, "idempotency_retention": RETENTION}
    cursor = await conn.execute(statement, params, prepare=True)
    row = await cursor.fetchone()
    assert row is not None
    return (row[1], row[2], row[3], len(row))


async def test_positions_are_what_the_feed_reads(store: PostgresEventStore) -> None:
    stream = new_stream()
    appended = await store.append_events(
        stream, [order(stream)], expected_version=None, metadata={}
    )
    before = Position(appended.position.transaction_id, appended.position.event_number - 1)
    page = await store.read_feed(before, 1)
    assert [(event.position, event.event.event_id) for event in page.events] == [
        (appended.position, appended.event_ids[0])
    ]
