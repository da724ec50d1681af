"""Which statement writes a batch, and the set-based one's outcomes, command by command.

A batch of commands that each have one event and no idempotency key, on distinct streams,
is written by ``append_single_events``; any other by the ``append_events`` function. The
batches here are formed on purpose: a gate command blocks the only writer while the
commands under test queue up behind it, and they then go out together as the next batch.
"""

import asyncio
from datetime import timedelta

import pytest

from cqrs_demo.domain.errors import ExpectedVersionMismatch
from cqrs_demo.ports import Appended, IdempotencyKey
from cqrs_demo.store.events import PostgresEventStore
from cqrs_demo.store.pool import Database
from tests.races import (
    HOLD_VERSION,
    blocked_statement,
    hold_version_one,
    wait_for_blocked_appends,
    wait_until_blocked_by_others,
)
from tests.store.batches import Append, append, in_one_batch
from tests.store.test_event_store import new_stream, order, rows

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(database: Database) -> PostgresEventStore:
    """One writer: what queues while it writes goes out as the next batch, all together."""
    return PostgresEventStore(
        database, idempotency_retention=timedelta(hours=1), max_batch=64, max_in_flight=1
    )


async def test_one_batch_keeps_each_commands_outcome_and_both_versions(
    store: PostgresEventStore, database_url: str
) -> None:
    fresh, stale, raced, raced_expecting = (new_stream() for _ in range(4))
    await store.append_events(stale, [order(stale)], expected_version=None, metadata={})
    # The raced streams' version 1 is inserted by the test's transactions, which commit
    # while the batch waits on them: after the batch read the heads (0) in its snapshot.
    holders = [await hold_version_one(database_url, s) for s in (raced, raced_expecting)]
    tasks = await in_one_batch(
        store,
        database_url,
        [
            append(store, fresh, expected_version=0),
            append(store, stale, expected_version=0),
            append(store, raced),
            append(store, raced_expecting, expected_version=0),
        ],
    )
    assert "jsonb_to_recordset" in await blocked_statement(database_url)
    for holder in holders:
        await holder.commit()
        await holder.close()
    appended, *conflicts = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(appended, Appended)
    assert (appended.stream_version, appended.replayed) == (1, False)
    assert [
        (c.stream, c.expected_version, c.actual_version)
        for c in conflicts
        if isinstance(c, ExpectedVersionMismatch)
    ] == [(stale, 0, 1), (raced, 0, 1), (raced_expecting, 0, 1)]
    assert [row[:2] for row in await rows(database_url, fresh)] == [(1, "OrderCreated")]
    for stream in (stale, raced, raced_expecting):
        assert len(await rows(database_url, stream)) == 1


async def test_the_versions_of_a_lost_race_are_read_after_the_winner(
    store: PostgresEventStore, database_url: str
) -> None:
    stream = new_stream()
    holder = await hold_version_one(database_url, stream)
    raced = asyncio.create_task(append(store, stream, expected_version=0))
    await wait_for_blocked_appends(database_url, 1)
    # The winner writes two more versions before it commits: the 409 must name the head
    # after them (3), not the head the batch read (0) nor the version it tried (1).
    for version in (2, 3):
        await holder.execute(HOLD_VERSION, [stream, version])
    await holder.commit()
    await holder.close()
    with pytest.raises(ExpectedVersionMismatch) as caught:
        await raced
    assert (caught.value.expected_version, caught.value.actual_version) == (0, 3)


def other_batch(store: PostgresEventStore, stream: str, batch: str) -> list[Append]:
    if batch == "idempotency-key":
        return [append(store, stream, idempotency=IdempotencyKey(f"key-{stream}", "hash"))]
    if batch == "two-events":
        return [append(store, stream, [order(stream), order(stream)])]
    return [append(store, stream), append(store, stream)]


@pytest.mark.parametrize(
    ("batch", "versions"),
    [("idempotency-key", [1]), ("two-events", [2]), ("stream-twice", [1, 2])],
)
async def test_other_batches_go_through_the_append_events_function(
    store: PostgresEventStore, database_url: str, batch: str, versions: list[int]
) -> None:
    stream = new_stream()
    holder = await hold_version_one(database_url, stream)
    tasks = await in_one_batch(store, database_url, other_batch(store, stream, batch))
    assert "append_events(" in await blocked_statement(database_url)
    await holder.rollback()
    await holder.close()
    outcomes = await asyncio.gather(*tasks)
    assert [outcome.stream_version for outcome in outcomes] == versions
    assert [row[0] for row in await rows(database_url, stream)] == list(range(1, versions[-1] + 1))


async def test_two_batches_take_their_rows_in_one_order_and_never_deadlock(
    database: Database, database_url: str
) -> None:
    # Batch A arrives as [last, gate A, first], batch B as [first, gate B, last], on two
    # writers. The test's transactions hold first and last (released first), and the gates.
    # In arrival order, A would take last and B first, both wait at their gate, then each
    # for the other's row: a deadlock (and the loser's commands written alone at version 2).
    # In stream order both wait for first: one batch takes all its streams, the other
    # waits for it and conflicts on first and last.
    store = PostgresEventStore(
        database, idempotency_retention=timedelta(hours=1), max_batch=64, max_in_flight=2
    )
    first, gate_a, gate_b, last = sorted(new_stream() for _ in range(4))
    contested = await hold_version_one(database_url, first, last)
    gates = await hold_version_one(database_url, gate_a, gate_b)
    busy_gate = new_stream()
    busy_holder = await hold_version_one(database_url, busy_gate)
    busy = asyncio.create_task(append(store, busy_gate))
    batch_a = await in_one_batch(
        store, database_url, [append(store, s) for s in (last, gate_a, first)], blocked=1
    )
    batch_b = [asyncio.create_task(append(store, s)) for s in (first, gate_b, last)]
    await asyncio.sleep(0)  # queued: both writers are busy
    await busy_holder.rollback()
    await busy_holder.close()
    await busy
    await wait_for_blocked_appends(database_url, 2)
    for holder in (contested, gates):
        await holder.rollback()
        await holder.close()
        await wait_until_blocked_by_others(database_url, 2 if holder is contested else 0)
    outcomes = [
        await asyncio.gather(*batch, return_exceptions=True) for batch in (batch_a, batch_b)
    ]
    described = sorted(
        sorted(
            f"version {outcome.stream_version}"
            if isinstance(outcome, Appended)
            else type(outcome).__name__
            for outcome in batch
        )
        for batch in outcomes
    )
    assert described == [
        ["ExpectedVersionMismatch", "ExpectedVersionMismatch", "version 1"],
        ["version 1", "version 1", "version 1"],
    ]
