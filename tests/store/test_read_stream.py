"""Reading a stream from the PostgreSQL store: order, bounds, direction, exact payloads."""

from datetime import timedelta
from decimal import Decimal

import pytest

from cqrs_demo.ports import Direction, RecordedEvent
from cqrs_demo.store.events import PostgresEventStore
from cqrs_demo.store.pool import Database
from tests.store.streams import new_stream, order

pytestmark = pytest.mark.anyio
METADATA = {"command_id": "c", "correlation_id": "k"}


@pytest.fixture
async def store(database: Database) -> PostgresEventStore:
    return PostgresEventStore(database, idempotency_retention=timedelta(hours=1))


async def stream_of(store: PostgresEventStore, count: int) -> str:
    stream = new_stream()
    for number in range(count):
        event = order(stream, f"{number}.50")
        await store.append_events(stream, [event], expected_version=number, metadata=METADATA)
    return stream


def versions(events: tuple[RecordedEvent, ...]) -> list[int]:
    return [event.version for event in events]


async def test_a_stream_reads_forward_whole_with_its_version(store: PostgresEventStore) -> None:
    stream = await stream_of(store, 5)
    read = await store.read_stream(stream)
    assert read.stream_version == 5
    assert versions(read.events) == [1, 2, 3, 4, 5]
    first = read.events[0]
    assert first.event_type == "OrderCreated"
    assert first.metadata == METADATA
    assert first.payload["user_id"] == stream
    assert first.payload["quantity"] == 2


async def test_prices_read_back_as_the_exact_decimals_stored(store: PostgresEventStore) -> None:
    stream = new_stream()
    for price in ("0.1", "150.00", "1E+3"):
        await store.append_events(
            stream, [order(stream, price)], expected_version=None, metadata={}
        )
    read = await store.read_stream(stream)
    prices = [event.payload["total_price"] for event in read.events]
    assert prices == [Decimal("0.1"), Decimal("150.00"), Decimal("1000")]
    assert [str(price) for price in prices] == ["0.1", "150.00", "1000"]


async def test_forward_reads_start_at_from_version_and_stop_at_limit(
    store: PostgresEventStore,
) -> None:
    stream = await stream_of(store, 6)
    read = await store.read_stream(stream, from_version=3, limit=2)
    assert (versions(read.events), read.stream_version) == ([3, 4], 6)
    rest = await store.read_stream(stream, from_version=5, limit=100)
    assert versions(rest.events) == [5, 6]


async def test_backward_reads_start_at_the_head_or_at_from_version(
    store: PostgresEventStore,
) -> None:
    stream = await stream_of(store, 4)
    head_down = await store.read_stream(stream, direction=Direction.BACKWARD, limit=3)
    assert versions(head_down.events) == [4, 3, 2]
    below = await store.read_stream(stream, direction=Direction.BACKWARD, from_version=2)
    assert (versions(below.events), below.stream_version) == ([2, 1], 4)


async def test_past_the_head_reads_no_events_but_the_version(store: PostgresEventStore) -> None:
    stream = await stream_of(store, 2)
    read = await store.read_stream(stream, from_version=3)
    assert (read.events, read.stream_version) == ((), 2)


async def test_a_stream_without_events_reads_empty_at_version_zero(
    store: PostgresEventStore,
) -> None:
    for direction in Direction:
        read = await store.read_stream(new_stream(), direction=direction)
        assert (read.events, read.stream_version) == ((), 0)


async def test_streams_do_not_mix(store: PostgresEventStore) -> None:
    one, other = await stream_of(store, 2), await stream_of(store, 3)
    read = await store.read_stream(one)
    assert {event.payload["user_id"] for event in read.events} == {one}
    assert (await store.read_stream(other)).stream_version == 3
