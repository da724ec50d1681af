"""The feed as this process's projections read it: each page read and decoded once.

The projections of one process read the same events; a page is read (and its events
decoded) once for all of them while it is in ``keep_pages``, the most recent full pages
(by default as many as hold ``KEEP_EVENTS`` events, two at least, so that the memory they
take does not grow with the batch size: ``docs/performance.md``, "Batches of 3,000").
A full page after a position is final: the feed reads only events of transactions that
ended before every running one, so no event can appear among them later (``read_feed``).
A page that is not full is never kept (more events may follow its last), only shared by
readers that ask for it while it is being read.
"""

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from cqrs_demo.domain.events import decode_event
from cqrs_demo.domain.orders import EVENT_TYPES, OrderEvent
from cqrs_demo.ports import FeedEvent, FeedReader, Position, ProjectionStop

KEEP_EVENTS = 16_000


@dataclass(frozen=True, slots=True)
class DecodedPage:
    """Events of the feed after a position, and the domain events they stand for, up to the
    first that cannot be read (``unreadable``: then ``decoded`` ends before it)."""

    events: tuple[FeedEvent, ...]
    decoded: tuple[OrderEvent, ...]
    unreadable: ProjectionStop | None


class SharedFeed:
    """Pages of ``batch_size`` events, read from ``events`` and shared; see the module."""

    def __init__(
        self, events: FeedReader, *, batch_size: int, keep_pages: int | None = None
    ) -> None:
        self._events = events
        self.batch_size = batch_size
        self.keep_pages = max(2, KEEP_EVENTS // batch_size) if keep_pages is None else keep_pages
        self._pages: OrderedDict[Position, asyncio.Task[DecodedPage]] = OrderedDict()

    async def page_after(self, position: Position) -> DecodedPage:
        """Up to ``batch_size`` events after ``position``, decoded. Raises what
        ``FeedReader.read_feed`` raises (to every reader waiting for that page)."""
        page = self._pages.get(position)
        if page is None:
            page = asyncio.create_task(self._read(position), name="feed")
            self._pages[position] = page
            page.add_done_callback(lambda done: self._keep_if_full(position, done))
        else:
            self._pages.move_to_end(position)
        return await asyncio.shield(page)

    async def _read(self, position: Position) -> DecodedPage:
        page = await self._events.read_feed(position, self.batch_size)
        decoded, unreadable = decode_page(page.events)
        return DecodedPage(page.events, tuple(decoded), unreadable)

    def reads(self) -> list["asyncio.Task[DecodedPage]"]:
        """The reads under way: a reader cancelled while waiting for its page does not
        cancel the read (other readers may wait for it too); a stop cancels these."""
        return [page for page in self._pages.values() if not page.done()]

    def _keep_if_full(self, position: Position, done: "asyncio.Task[DecodedPage]") -> None:
        if (
            done.cancelled()
            or done.exception() is not None
            or len(done.result().events) < self.batch_size
        ):
            self._pages.pop(position, None)
        while len(self._pages) > self.keep_pages:
            self._pages.popitem(last=False)


def decode_page(events: tuple[FeedEvent, ...]) -> tuple[list[OrderEvent], ProjectionStop | None]:
    """The events as domain events, up to the first one that cannot be read."""
    decoded: list[OrderEvent] = []
    for item in events:
        event = item.event
        try:
            decoded.append(
                decode_event(
                    EVENT_TYPES, event.event_type, event.event_id, event.occurred_on, event.payload
                )
            )
        except Exception as error:  # whatever the failure, the projection stops here
            reason = str(error) or type(error).__name__
            return decoded, ProjectionStop(event.event_id, event.event_type, reason)
    return decoded, None
