"""The PostgreSQL event store, against a real server: versions, conflicts, atomicity."""

import asyncio
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

import psycopg
import pytest

from cqrs_demo.domain.errors import ExpectedVersionMismatch
from cqrs_demo.domain.events import DomainEvent
from cqrs_demo.domain.ids import uuid7
from cqrs_demo.domain.orders import OrderCreated
from cqrs_demo.store.errors import StoreError, StoreUnavailable
from cqrs_demo.store.events import PostgresEventStore
from cqrs_demo.store.pool import Database
from tests.races import hold_version_one, wait_for_blocked_appends

pytestmark = pytest.mark.anyio
_streams = itertools.count(1)
METADATA = {"command_id": "c", "correlation_id": "c"}


def new_stream() -> str:
    return f"store-test-{uuid7().hex}-{next(_streams)}"


def order(user: str, price: str = "150.00") -> OrderCreated:
    return OrderCreated(
        event_id=uuid7(),
        order_id=str(uuid7()),
        user_id=user,
        product_id="prod_456",
        quantity=2,
        total_price=Decimal(price),
        occurred_on=datetime.now(UTC),
    )


@dataclass(frozen=True)
class OddEvent:
    """An event whose type is too long for the table's VARCHAR(100): the database refuses it."""

    event_type: ClassVar[str] = "X" * 101
    event_id: UUID
    occurred_on: datetime

    def payload(self) -> dict[str, object]:
        return {"event_type": self.event_type}


RETENTION = timedelta(hours=24)


@pytest.fixture(params=[64, 1], ids=["group-commit", "one-by-one"])
async def store(database: Database, request: pytest.FixtureRequest) -> PostgresEventStore:
    return PostgresEventStore(
        database, idempotency_retention=RETENTION, max_batch=request.param, max_in_flight=2
    )


async def rows(database_url: str, stream: str) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT version, event_type, payload, metadata FROM events"
            " WHERE aggregate_id = %s ORDER BY version",
            [stream],
        )
        return await cursor.fetchall()


async def test_a_new_stream_starts_at_version_one(
    store: PostgresEventStore, database_url: str
) -> None:
    stream = new_stream()
    event = order(stream)
    appended = await store.append_events(stream, [event], expected_version=0, metadata=METADATA)
    assert (appended.stream_version, appended.event_ids, appended.replayed) == (
        1,
        (event.event_id,),
        False,
    )
    [(version, event_type, payload, metadata)] = await rows(database_url, stream)
    assert (version, event_type) == (1, "OrderCreated")
    assert payload == {
        "event_type": "OrderCreated",
        "order_id": event.order_id,
        "user_id": stream,
        "product_id": "prod_456",
        "quantity": 2,
        "total_price": Decimal("150.00"),
        "occurred_on": event.occurred_on.isoformat(),
    }
    assert metadata == METADATA


async def test_the_price_is_stored_as_the_exact_decimal(
    store: PostgresEventStore, database_url: str
) -> None:
    stream = new_stream()
    await store.append_events(stream, [order(stream, "0.1")], expected_version=None, metadata={})
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT payload->>'total_price', (payload->'total_price')::numeric = 0.1"
            " FROM events WHERE aggregate_id = %s",
            [stream],
        )
        assert await cursor.fetchone() == ("0.1", True)


async def test_appends_without_expected_version_follow_the_head(store: PostgresEventStore) -> None:
    stream = new_stream()
    versions = [
        (
            await store.append_events(stream, [order(stream)], expected_version=None, metadata={})
        ).stream_version
        for _ in range(3)
    ]
    assert versions == [1, 2, 3]


async def test_several_events_take_consecutive_versions(
    store: PostgresEventStore, database_url: str
) -> None:
    stream = new_stream()
    await store.append_events(stream, [order(stream)], expected_version=0, metadata={})
    appended = await store.append_events(
        stream, [order(stream), order(stream)], expected_version=1, metadata={}
    )
    assert appended.stream_version == 3
    assert [row[0] for row in await rows(database_url, stream)] == [1, 2, 3]


async def test_a_stale_expected_version_is_refused_with_both_versions(
    store: PostgresEventStore, database_url: str
) -> None:
    stream = new_stream()
    await store.append_events(stream, [order(stream)], expected_version=0, metadata={})
    with pytest.raises(ExpectedVersionMismatch) as caught:
        await store.append_events(stream, [order(stream)], expected_version=0, metadata={})
    assert (caught.value.expected_version, caught.value.actual_version) == (0, 1)
    assert len(await rows(database_url, stream)) == 1


async def test_an_expected_version_ahead_of_the_stream_leaves_no_gap(
    store: PostgresEventStore, database_url: str
) -> None:
    stream = new_stream()
    await store.append_events(stream, [order(stream)], expected_version=0, metadata={})
    with pytest.raises(ExpectedVersionMismatch) as caught:
        await store.append_events(stream, [order(stream)], expected_version=5, metadata={})
    assert (caught.value.expected_version, caught.value.actual_version) == (5, 1)
    assert [row[0] for row in await rows(database_url, stream)] == [1]


async def test_a_failure_on_the_second_event_leaves_no_row(
    store: PostgresEventStore, database_url: str
) -> None:
    stream = new_stream()
    events: list[DomainEvent] = [order(stream), OddEvent(uuid7(), datetime.now(UTC))]
    with pytest.raises(StoreError, match="StringDataRightTruncation"):
        await store.append_events(stream, events, expected_version=0, metadata={})
    assert await rows(database_url, stream) == []
    assert await store.stream_version(stream) == 0


async def test_a_duplicate_event_id_is_an_error_not_a_conflict(
    store: PostgresEventStore, database_url: str
) -> None:
    stream = new_stream()
    event = order(stream)
    await store.append_events(stream, [event], expected_version=0, metadata={})
    with pytest.raises(StoreError, match="UniqueViolation"):
        await store.append_events(new_stream(), [event], expected_version=0, metadata={})


@pytest.mark.parametrize("expected_version", [None, 0])
async def test_two_racing_appends_one_wins_one_conflicts(
    store: PostgresEventStore, database_url: str, expected_version: int | None
) -> None:
    # Deterministic race: a third transaction holds version 1, both appends read head 0 and
    # block on it; it rolls back, one append takes version 1, the other must conflict.
    stream = new_stream()
    holder = await hold_version_one(database_url, stream)
    first = asyncio.create_task(
        store.append_events(stream, [order(stream)], expected_version=expected_version, metadata={})
    )
    second = asyncio.create_task(
        store.append_events(stream, [order(stream)], expected_version=expected_version, metadata={})
    )
    await wait_for_blocked_appends(database_url, 2)
    await holder.rollback()
    await holder.close()
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
    assert sorted(type(o).__name__ for o in outcomes) == ["Appended", "ExpectedVersionMismatch"]
    conflict = next(o for o in outcomes if isinstance(o, ExpectedVersionMismatch))
    assert (conflict.expected_version, conflict.actual_version) == (0, 1)
    assert [row[0] for row in await rows(database_url, stream)] == [1]


async def test_an_exhausted_pool_answers_unavailable_within_its_timeout(database_url: str) -> None:
    database = Database(database_url, min_size=1, max_size=1, timeout=0.5)
    await database.open(wait_seconds=10)
    store = PostgresEventStore(database, idempotency_retention=RETENTION)
    stream = new_stream()
    holder = await hold_version_one(database_url, stream)
    try:
        blocked = asyncio.create_task(
            store.append_events(stream, [order(stream)], expected_version=None, metadata={})
        )
        await wait_for_blocked_appends(database_url, 1)
        started = asyncio.get_running_loop().time()
        with pytest.raises(StoreUnavailable, match=r"no database connection free after 0\.50"):
            await store.stream_version(stream)
        # The pool's timeout (0.5 s), not the held lock (released only afterwards): 2 s
        # leaves a loaded 2-core machine 1.5 s for a failed checkout, a few ms of work.
        assert asyncio.get_running_loop().time() - started < 2
    finally:
        await holder.rollback()
        await holder.close()
        assert (await blocked).stream_version == 1
        await database.close()
