"""One contract, every write path: the lone statement (a batch of one), the set-based
statement and the append_events function give the same outcome for the same batch.

Each test calls a path's ``write`` directly with a batch that all take (one event and no
idempotency key per command, no stream twice); ``set_based_append.accepts`` is checked for
every batch, so the suite cannot drift into cases only one path supports. Tests of batches
of one command run over all three paths (``write``), tests of larger batches over the two
that take them (``write_batch``). What only the function takes (several events per command,
idempotency keys, a stream twice in a batch) is tested through the store, where the
function is the only path for it.
"""

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial

import psycopg
import pytest

from cqrs_demo.domain.errors import ExpectedVersionMismatch
from cqrs_demo.domain.events import DomainEvent
from cqrs_demo.domain.ids import uuid7
from cqrs_demo.ports import Appended
from cqrs_demo.store import plpgsql_append, set_based_append
from cqrs_demo.store.errors import StoreError
from cqrs_demo.store.pending import PendingAppend
from cqrs_demo.store.pool import Database
from tests.races import (
    HOLD_VERSION,
    hold_version_one,
    transactions_of,
    wait_for_blocked_appends,
    wait_until_blocked_by_others,
)
from tests.store.conftest import RETENTION
from tests.store.streams import BareEvent, OddEvent, new_stream, order, position_of, rows

pytestmark = pytest.mark.anyio
METADATA = {"command_id": "c", "correlation_id": "k"}

Outcomes = list[Appended | Exception]
Write = Callable[[Sequence[PendingAppend]], Coroutine[object, object, Outcomes]]


def chosen_path(database: Database, path: str) -> Write:
    """A write path's ``write``, bound to the test's pool; it refuses a batch that the
    set-based path would not take, and the lone statement a batch of more than one."""
    if path == "plpgsql":
        chosen: Write = partial(plpgsql_append.write, database, idempotency_retention=RETENTION)
    elif path == "set-based":
        chosen = partial(set_based_append.write_as_batch, database)
    else:
        chosen = partial(set_based_append.write, database)

    async def checked(batch: Sequence[PendingAppend]) -> Outcomes:
        assert set_based_append.accepts(batch), "not a batch both paths take"
        assert path != "lone" or len(batch) == 1, "the lone statement takes one command"
        return await chosen(batch)

    return checked


@pytest.fixture(params=["lone", "set-based", "plpgsql"])
def write(database: Database, request: pytest.FixtureRequest) -> Write:
    """Each path, for tests whose batches are of one command."""
    return chosen_path(database, request.param)


@pytest.fixture(params=["set-based", "plpgsql"])
def write_batch(database: Database, request: pytest.FixtureRequest) -> Write:
    """The paths that take batches of several commands."""
    return chosen_path(database, request.param)


def command(
    stream: str,
    expected_version: int | None = None,
    event: DomainEvent | None = None,
    metadata: Mapping[str, object] | None = None,
) -> PendingAppend:
    """One command of a batch: one event (a new order by default), no idempotency key."""
    return PendingAppend(
        stream, [event or order(stream)], expected_version, metadata or {}, None, {"r": 1}
    )


def versions_of(outcomes: Outcomes) -> list[object]:
    """Each outcome as its stream version, or as (expected, actual) of a conflict."""
    return [
        outcome.stream_version
        if isinstance(outcome, Appended)
        else (outcome.expected_version, outcome.actual_version)
        if isinstance(outcome, ExpectedVersionMismatch)
        else outcome
        for outcome in outcomes
    ]


async def test_a_new_stream_starts_at_version_one_with_payload_and_metadata(
    write: Write, database_url: str
) -> None:
    stream = new_stream()
    event = order(stream)
    [appended] = await write([command(stream, 0, event, METADATA)])
    position = await position_of(database_url, event.event_id)
    assert appended == Appended(1, (event.event_id,), {"r": 1}, position, replayed=False)
    [(version, event_type, payload, metadata)] = await rows(database_url, stream)
    assert (version, event_type, metadata) == (1, "OrderCreated", METADATA)
    assert payload == {
        "event_type": "OrderCreated",
        "order_id": event.order_id,
        "user_id": stream,
        "product_id": "prod_456",
        "quantity": 2,
        "total_price": Decimal("150.00"),
        "occurred_on": event.occurred_on.isoformat(),
    }


async def test_the_price_is_stored_as_the_exact_decimal(write: Write, database_url: str) -> None:
    stream = new_stream()
    await write([command(stream, event=order(stream, "0.1"))])
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT payload->>'total_price', (payload->'total_price')::numeric = 0.1"
            " FROM events WHERE aggregate_id = %s",
            [stream],
        )
        assert await cursor.fetchone() == ("0.1", True)


async def test_appends_without_expected_version_follow_the_head(write: Write) -> None:
    stream = new_stream()
    assert [versions_of(await write([command(stream)])) for _ in range(3)] == [[1], [2], [3]]


@pytest.mark.parametrize(("expected_version", "actual_version"), [(0, 1), (5, 1)])
async def test_an_expected_version_other_than_the_head_is_refused_with_both_versions(
    write: Write, database_url: str, expected_version: int, actual_version: int
) -> None:
    # 0: stale (the stream moved on); 5: ahead of the stream, which must leave no gap.
    stream = new_stream()
    await write([command(stream, 0)])
    [refused] = await write([command(stream, expected_version)])
    assert isinstance(refused, ExpectedVersionMismatch)
    assert (refused.stream, refused.expected_version, refused.actual_version) == (
        stream,
        expected_version,
        actual_version,
    )
    assert [row[0] for row in await rows(database_url, stream)] == [1]


@pytest.mark.parametrize("expected_version", [None, 0])
async def test_a_concurrent_append_that_takes_the_version_first_is_a_conflict_after_it(
    write: Write, database_url: str, expected_version: int | None
) -> None:
    # The test's transaction holds version 1; the batch reads head 0 and waits for it. The
    # holder writes two more versions and commits: the conflict names the head after them
    # (3), not the head the batch read (0) nor the version it tried (1).
    stream = new_stream()
    holder = await hold_version_one(database_url, stream)
    raced = asyncio.create_task(write([command(stream, expected_version)]))
    await wait_for_blocked_appends(database_url, 1)
    for version in (2, 3):
        await holder.execute(HOLD_VERSION, [stream, "Held", "{}", version])
    await holder.commit()
    await holder.close()
    assert versions_of(await raced) == [(0, 3)]
    assert [row[1] for row in await rows(database_url, stream)] == ["Held"] * 3


async def test_two_racing_batches_one_wins_one_conflicts(write: Write, database_url: str) -> None:
    # Both read head 0 and wait for the held version 1; it is rolled back, one batch takes
    # version 1, the other must then conflict with it.
    stream = new_stream()
    holder = await hold_version_one(database_url, stream)
    racing = [asyncio.create_task(write([command(stream, 0)])) for _ in range(2)]
    await wait_for_blocked_appends(database_url, 2)
    await holder.rollback()
    await holder.close()
    outcomes = [versions_of(await each) for each in racing]
    assert sorted(outcomes, key=str) == [[(0, 1)], [1]]
    assert [row[:2] for row in await rows(database_url, stream)] == [(1, "OrderCreated")]


async def test_refused_commands_leave_nothing_and_the_others_of_the_batch_commit(
    write_batch: Write, database_url: str
) -> None:
    fresh, stale, follows = (new_stream() for _ in range(3))
    # The raced streams' version 1 is inserted by the test's transactions, each committed
    # while the batch waits on it, after the batch read its head (0). The function reads a
    # head only when it comes to the command, so the one without an expected version
    # comes first and the second holder commits only once the batch waits on it too.
    raced, raced_expecting = sorted(new_stream() for _ in range(2))
    await write_batch([command(stale)])
    holders = [await hold_version_one(database_url, s) for s in (raced, raced_expecting)]
    batch = [
        command(fresh, 0),
        command(stale, 0),
        command(raced),
        command(raced_expecting, 0),
        command(follows),
    ]
    written = asyncio.create_task(write_batch(batch))
    for holder in holders:
        await wait_until_blocked_by_others(database_url, 1)
        await holder.commit()
        await holder.close()
    assert versions_of(await written) == [1, (0, 1), (0, 1), (0, 1), 1]
    for stream in (stale, raced, raced_expecting):
        assert len(await rows(database_url, stream)) == 1
    transactions = await transactions_of(database_url, [fresh, follows])
    assert len(set(transactions.values())) == 1, "the batch was not one transaction"


@pytest.mark.parametrize(
    ("refused_command", "error"),
    [
        ("duplicate-event-id", "UniqueViolation"),
        ("type-too-long", "StringDataRightTruncation"),
    ],
)
async def test_an_error_other_than_a_conflict_fails_the_whole_batch(
    write_batch: Write, database_url: str, refused_command: str, error: str
) -> None:
    taken, other, refused = new_stream(), new_stream(), new_stream()
    event = order(taken)
    await write_batch([command(taken, event=event)])
    odd: DomainEvent = (
        event if refused_command == "duplicate-event-id" else OddEvent(uuid7(), event.occurred_on)
    )
    with pytest.raises(StoreError, match=error):
        await write_batch([command(other), command(refused, event=odd)])
    assert await rows(database_url, other) == []
    assert await rows(database_url, refused) == []


@pytest.mark.parametrize(
    ("refused_command", "error"),
    [
        ("duplicate-event-id", "UniqueViolation"),
        ("type-too-long", "StringDataRightTruncation"),
    ],
)
async def test_an_error_other_than_a_conflict_fails_a_command_alone_and_writes_nothing(
    write: Write, database_url: str, refused_command: str, error: str
) -> None:
    taken, refused = new_stream(), new_stream()
    event = order(taken)
    await write([command(taken, event=event)])
    odd: DomainEvent = (
        event if refused_command == "duplicate-event-id" else OddEvent(uuid7(), event.occurred_on)
    )
    with pytest.raises(StoreError, match=error):
        await write([command(refused, event=odd)])
    assert await rows(database_url, refused) == []


async def test_a_stream_name_with_a_nul_byte_is_refused_not_cut_short(
    write: Write, database_url: str
) -> None:
    # PostgreSQL's text holds no NUL; a text parameter is a C string to libpq, which would
    # have written the event to the stream named by what comes before it.
    stream = new_stream()
    with pytest.raises(StoreError):
        await write([command(stream + "\x00tail", event=BareEvent(uuid7(), datetime.now(UTC)))])
    assert await rows(database_url, stream) == []


async def test_two_batches_take_their_rows_in_one_order_and_never_deadlock(
    write_batch: Write, database_url: str
) -> None:
    # Batch A comes as [last, gate A, first], batch B as [first, gate B, last]. The test's
    # transactions hold first and last (released first), and the gates. In the order given,
    # A would take last and B first, both wait at their gate, then each for the other's row:
    # a deadlock. In stream order both wait for first: one batch takes all its streams, the
    # other waits for it and conflicts on first and last.
    first, gate_a, gate_b, last = sorted(new_stream() for _ in range(4))
    contested = await hold_version_one(database_url, first, last)
    gates = await hold_version_one(database_url, gate_a, gate_b)
    # Expected versions given: without them the function, which reads each head when it
    # comes to the command, would append the loser's last after the winner's (version 2).
    batch_a = asyncio.create_task(write_batch([command(s, 0) for s in (last, gate_a, first)]))
    batch_b = asyncio.create_task(write_batch([command(s, 0) for s in (first, gate_b, last)]))
    await wait_for_blocked_appends(database_url, 2)
    for holder in (contested, gates):
        await holder.rollback()
        await holder.close()
        await wait_until_blocked_by_others(database_url, 2 if holder is contested else 0)
    outcomes = sorted([versions_of(await batch_a), versions_of(await batch_b)], key=str)
    assert outcomes in (
        [[(0, 1), 1, (0, 1)], [1, 1, 1]],  # B won: A's last and first conflict
        [[1, 1, 1], [(0, 1), 1, (0, 1)]],
    )
