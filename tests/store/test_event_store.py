"""The PostgreSQL event store through its API, in both write modes: what only the
append_events function takes (several events per command), and an exhausted pool.

What every batch of single events must give, whichever statement writes it, is proven
against both write paths in ``test_write_paths``.
"""

import asyncio
from datetime import UTC, datetime

import pytest

from cqrs_demo.domain.events import DomainEvent
from cqrs_demo.domain.ids import uuid7
from cqrs_demo.store.errors import StoreError, StoreUnavailable
from cqrs_demo.store.events import PostgresEventStore
from cqrs_demo.store.pool import Database
from tests.races import hold_version_one, wait_for_blocked_appends
from tests.store.conftest import RETENTION
from tests.store.streams import OddEvent, new_stream, order, rows

pytestmark = pytest.mark.anyio


async def test_several_events_take_consecutive_versions(
    store: PostgresEventStore, database_url: str
) -> None:
    stream = new_stream()
    first = await store.append_events(stream, [order(stream)], expected_version=0, metadata={})
    events = [order(stream), order(stream)]
    appended = await store.append_events(stream, events, expected_version=1, metadata={})
    assert (first.stream_version, appended.stream_version) == (1, 3)
    assert appended.event_ids == tuple(event.event_id for event in events)
    assert [row[0] for row in await rows(database_url, stream)] == [1, 2, 3]


async def test_a_failure_on_the_second_event_leaves_no_row(
    store: PostgresEventStore, database_url: str
) -> None:
    stream = new_stream()
    events: list[DomainEvent] = [order(stream), OddEvent(uuid7(), datetime.now(UTC))]
    with pytest.raises(StoreError, match="StringDataRightTruncation"):
        await store.append_events(stream, events, expected_version=0, metadata={})
    assert await rows(database_url, stream) == []
    assert await store.stream_version(stream) == 0


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
