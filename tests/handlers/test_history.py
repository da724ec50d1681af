"""Deciding from history against the real store: the retry on a lost race is bounded."""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial

import pytest

from cqrs_demo.domain.errors import ExpectedVersionMismatch
from cqrs_demo.domain.events import DomainEvent
from cqrs_demo.domain.ids import uuid7
from cqrs_demo.domain.orders import CancelOrder, CreateOrder, cancel_order, create_order
from cqrs_demo.handlers.append import CommandContext
from cqrs_demo.handlers.history import MAX_ATTEMPTS, decide_from_history
from cqrs_demo.ports import Appended, IdempotencyKey
from cqrs_demo.store.events import PostgresEventStore
from cqrs_demo.store.pool import Database

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 30, tzinfo=UTC)
CONTEXT = CommandContext(uuid7(), "corr")


class RacedStore(PostgresEventStore):
    """The real store, except that just before each append of a cancel another order is
    committed to the stream: every decision is made on a version that is gone."""

    appends = 0

    async def append_events(
        self,
        stream: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: int | None,
        metadata: Mapping[str, object],
        idempotency: IdempotencyKey | None = None,
        result: Mapping[str, object] | None = None,
    ) -> Appended:
        if events[0].event_type == "OrderCancelled":
            self.appends += 1
            await place(stream, self)
        return await super().append_events(
            stream,
            events,
            expected_version=expected_version,
            metadata=metadata,
            idempotency=idempotency,
            result=result,
        )


async def place(user: str, store: PostgresEventStore) -> str:
    events = create_order(CreateOrder(user, "p", 1, Decimal(1)), now=NOW, new_id=uuid7)
    await PostgresEventStore.append_events(store, user, events, expected_version=None, metadata={})
    return events[0].order_id


async def test_a_command_that_keeps_losing_races_is_a_409_after_max_attempts(
    database: Database,
) -> None:
    store = RacedStore(database, idempotency_retention=timedelta(hours=1))
    user = f"raced-{uuid7().hex}"
    order_id = await place(user, store)
    command = CancelOrder(user, order_id)
    decide = partial(cancel_order, command=command, now=NOW, new_id=uuid7)
    with pytest.raises(ExpectedVersionMismatch) as lost:
        await decide_from_history(store, command, CONTEXT, decide, result={})
    assert store.appends == MAX_ATTEMPTS
    assert (lost.value.expected_version, lost.value.actual_version) == (
        MAX_ATTEMPTS,
        MAX_ATTEMPTS + 1,
    )
    read = await store.read_stream(user)
    assert {event.event_type for event in read.events} == {"OrderCreated"}
    assert read.stream_version == 1 + MAX_ATTEMPTS
