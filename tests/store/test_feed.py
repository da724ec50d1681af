"""The global feed against a real server: order, paging, and no event ever skipped."""

from dataclasses import replace

import psycopg
import pytest

from cqrs_demo.ports import START, FeedEvent, FeedPage, Position
from cqrs_demo.store.events import PostgresEventStore
from cqrs_demo.store.feed import ProjectionFeed
from cqrs_demo.store.pool import Database
from tests.store.streams import new_stream, order

pytestmark = pytest.mark.anyio


async def append(store: PostgresEventStore, stream: str) -> None:
    await store.append_events(stream, [order(stream)], expected_version=None, metadata={})


async def read_all(store: PostgresEventStore, after: Position, limit: int = 7) -> FeedPage:
    """Every event after ``after`` that the feed shows now, page by page."""
    events: list[FeedEvent] = []
    position = after
    while True:
        page = await store.read_feed(position, limit)
        events += page.events
        if not page.events:
            return FeedPage(tuple(events), position)
        position = page.next


async def head(store: PostgresEventStore) -> Position:
    return (await read_all(store, START, 1000)).next


async def test_the_feed_pages_through_every_stream_in_commit_order(
    one_writer_store: PostgresEventStore,
) -> None:
    store = one_writer_store
    start = await head(store)
    streams = [new_stream() for _ in range(3)]
    for _ in range(4):
        for stream in streams:
            await append(store, stream)
    page = await read_all(store, start, limit=5)
    mine = [event for event in page.events if event.stream in streams]
    assert len(mine) == 12
    positions = [event.position for event in page.events]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)
    assert [(e.stream, e.event.version) for e in mine[:3]] == [(s, 1) for s in streams]
    assert page.next == positions[-1]


async def test_a_position_reads_back_from_its_string() -> None:
    position = Position(2**64 - 1, 2**63 - 1)
    assert Position.parse(str(position)) == position
    for text in ("", "1", "1-", "-1", "a-1", "1-2-3", f"{2**64}-1", f"1-{2**63}", " 1-2"):
        with pytest.raises(ValueError, match="not a position"):
            Position.parse(text)


async def test_an_event_whose_transaction_commits_last_is_not_skipped(
    one_writer_store: PostgresEventStore, database_url: str
) -> None:
    # The early transaction takes its id (and its row id) first and commits last, while
    # later ones commit: the feed must hold back at it, then include it, in its order.
    store = one_writer_store
    start = await head(store)
    early_stream = new_stream()
    early = await psycopg.AsyncConnection.connect(database_url)
    await early.execute(
        "INSERT INTO events (aggregate_id, event_type, payload, version)"
        " VALUES (%s, 'OrderCreated', '{}', 1)",
        [early_stream],
    )
    later = new_stream()
    await append(store, later)
    await append(store, later)
    while_running = await read_all(store, start)
    assert not any(e.stream in (early_stream, later) for e in while_running.events)
    await early.commit()
    await early.close()
    after_commit = await read_all(store, while_running.next)
    order_seen = [e.stream for e in after_commit.events if e.stream in (early_stream, later)]
    assert order_seen == [early_stream, later, later]


async def test_the_projections_feed_reads_the_same_events_without_their_metadata(
    database: Database, one_writer_store: PostgresEventStore
) -> None:
    store = one_writer_store
    start = await head(store)
    stream = new_stream()
    for _ in range(3):
        await store.append_events(
            stream, [order(stream)], expected_version=None, metadata={"command_id": "c-1"}
        )
    full = await store.read_feed(start, 10)
    lean = await ProjectionFeed(database).read_feed(start, 10)
    assert [event.event.metadata for event in full.events] == [{"command_id": "c-1"}] * 3
    assert [event.event.metadata for event in lean.events] == [{}] * 3
    assert lean.next == full.next
    assert [replace(e, event=replace(e.event, metadata={})) for e in full.events] == list(
        lean.events
    )
