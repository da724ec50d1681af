"""Which write path the store chooses for a batch.

A batch of commands that each have one event and no idempotency key, on distinct streams, is
written by the set-based ``append_single_events``, or by ``append_lone_event`` when it is a
batch of one; any other by the ``append_events`` function. (That all give the same outcomes
is ``test_write_paths``.) The batches here are formed on purpose: a gate command blocks the
only writer while the commands under test queue up behind it, and they then go out together
as its next batch.
"""

import asyncio

import pytest

from cqrs_demo.ports import IdempotencyKey
from cqrs_demo.store.events import PostgresEventStore
from tests.races import blocked_statement, hold_version_one
from tests.store.batches import Append, append, in_one_batch
from tests.store.streams import new_stream, order, rows

pytestmark = pytest.mark.anyio


def batch_of(store: PostgresEventStore, stream: str, batch: str) -> list[Append]:
    """Appends to ``stream`` (first) that make the named kind of batch."""
    if batch == "single-events":
        return [append(store, stream), append(store, new_stream(), expected_version=0)]
    if batch == "lone-event":
        return [append(store, stream, expected_version=0)]
    if batch == "idempotency-key":
        return [append(store, stream, idempotency=IdempotencyKey(f"key-{stream}", "hash"))]
    if batch == "two-events":
        return [append(store, stream, [order(stream), order(stream)])]
    return [append(store, stream), append(store, stream)]


@pytest.mark.parametrize(
    ("batch", "statement", "versions"),
    [
        ("single-events", "jsonb_to_recordset", [1, 1]),
        ("lone-event", "FROM head h", [1]),
        ("idempotency-key", "append_events(", [1]),
        ("two-events", "append_events(", [2]),
        ("stream-twice", "append_events(", [1, 2]),
    ],
)
async def test_each_batch_goes_through_its_write_path(
    one_writer_store: PostgresEventStore,
    database_url: str,
    batch: str,
    statement: str,
    versions: list[int],
) -> None:
    stream = new_stream()
    holder = await hold_version_one(database_url, stream)
    tasks = await in_one_batch(
        one_writer_store, database_url, batch_of(one_writer_store, stream, batch)
    )
    assert statement in await blocked_statement(database_url)
    await holder.rollback()
    await holder.close()
    outcomes = await asyncio.gather(*tasks)
    assert [outcome.stream_version for outcome in outcomes] == versions
    assert [row[0] for row in await rows(database_url, stream)] == list(range(1, max(versions) + 1))
