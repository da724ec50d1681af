"""The projector's shared feed and settings, without a database."""

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cqrs_demo.domain.events import DomainEvent
from cqrs_demo.domain.ids import uuid7
from cqrs_demo.ports import (
    Appended,
    Direction,
    FeedEvent,
    FeedPage,
    IdempotencyKey,
    Position,
    RecordedEvent,
    StreamSlice,
)
from cqrs_demo.projector.feed import SharedFeed
from cqrs_demo.settings import ConfigError, load_settings

pytestmark = pytest.mark.anyio

URL = {"CQRS_DATABASE_URL": "postgresql://app@db.example/cqrs_events"}


def feed_event(number: int, payload: Mapping[str, object]) -> FeedEvent:
    recorded = RecordedEvent(uuid7(), "OrderCreated", 1, datetime.now(UTC), payload, {})
    return FeedEvent(Position(number, number), f"u{number}", recorded)


def good(number: int) -> FeedEvent:
    return feed_event(
        number,
        {
            "order_id": f"o{number}",
            "user_id": f"u{number}",
            "product_id": "p",
            "quantity": 1,
            "total_price": Decimal("2.50"),
        },
    )


class FakeFeed:
    """The feed of ``events``; counts the reads."""

    def __init__(self, events: list[FeedEvent]) -> None:
        self.events = events
        self.reads: list[Position] = []

    async def read_feed(self, after: Position, limit: int) -> FeedPage:
        self.reads.append(after)
        await asyncio.sleep(0)
        page = tuple(e for e in self.events if e.position > after)[:limit]
        return FeedPage(page, page[-1].position if page else after)

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
        raise NotImplementedError

    async def read_stream(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        limit: int | None = None,
        direction: Direction = Direction.FORWARD,
    ) -> StreamSlice:
        raise NotImplementedError

    async def recorded_outcome(self, idempotency: IdempotencyKey) -> Appended | None:
        raise NotImplementedError


async def test_a_full_page_is_read_once_for_every_projection() -> None:
    store = FakeFeed([good(n) for n in range(1, 6)])
    feed = SharedFeed(store, batch_size=2)
    start = Position(0, 0)
    first, second = await asyncio.gather(feed.page_after(start), feed.page_after(start))
    again = await feed.page_after(start)
    assert first is second is again
    assert [e.order_id for e in first.decoded] == ["o1", "o2"]
    assert store.reads == [start]


async def test_a_page_that_is_not_full_is_read_again_for_the_next_reader() -> None:
    store = FakeFeed([good(1)])
    feed = SharedFeed(store, batch_size=2)
    assert len((await feed.page_after(Position(0, 0))).events) == 1
    store.events.append(good(2))
    assert len((await feed.page_after(Position(0, 0))).events) == 2
    assert len(store.reads) == 2


async def test_only_the_newest_pages_are_kept() -> None:
    store = FakeFeed([good(n) for n in range(1, 10)])
    feed = SharedFeed(store, batch_size=1, keep_pages=2)
    for number in range(4):
        await feed.page_after(Position(number, number))
    await feed.page_after(Position(0, 0))
    assert store.reads.count(Position(0, 0)) == 2
    await feed.page_after(Position(3, 3))
    assert store.reads.count(Position(3, 3)) == 1


def test_the_pages_kept_hold_about_as_many_events_whatever_the_batch_size() -> None:
    store = FakeFeed([])
    kept = {size: SharedFeed(store, batch_size=size).keep_pages for size in (1000, 3000, 20_000)}
    assert kept == {1000: 16, 3000: 5, 20_000: 2}
    assert SharedFeed(store, batch_size=3000, keep_pages=7).keep_pages == 7


async def test_decoding_stops_at_the_first_unreadable_event() -> None:
    bad = feed_event(2, {"order_id": "o2", "user_id": "u2", "quantity": "two"})
    store = FakeFeed([good(1), bad, good(3)])
    page = await SharedFeed(store, batch_size=10).page_after(Position(0, 0))
    assert len(page.events) == 3
    assert [e.order_id for e in page.decoded] == ["o1"]
    assert page.unreadable is not None
    assert page.unreadable.event_id == bad.event.event_id
    assert "payload field 'product_id' is not a string" in page.unreadable.error


def test_projector_settings_have_defaults_and_limits() -> None:
    settings = load_settings(URL)
    assert (settings.projector_batch_size, settings.projector_poll_seconds) == (3000, 1.0)
    tuned = load_settings(
        {**URL, "CQRS_PROJECTOR_BATCH_SIZE": "50", "CQRS_PROJECTOR_POLL_SECONDS": "0.25"}
    )
    assert (tuned.projector_batch_size, tuned.projector_poll_seconds) == (50, 0.25)
    with pytest.raises(
        ConfigError, match=r"POLL_SECONDS='2' is invalid: must be between 0\.01 and 1"
    ):
        load_settings({**URL, "CQRS_PROJECTOR_POLL_SECONDS": "2"})
    with pytest.raises(ConfigError, match="CQRS_PROJECTOR_BATCH_SIZE='0'"):
        load_settings({**URL, "CQRS_PROJECTOR_BATCH_SIZE": "0"})
