"""The global feed over HTTP: ``GET /api/events?after=&limit=&wait=``.

Every stream's events in feed order (``EventStore.read_feed``: none is ever skipped), a
page at a time, each with its position; ``next`` is where to read on. A client that has read
past the ``position`` of a command's 202 has seen that command (read-your-writes). With
``wait``, a read that finds nothing waits for events (a long poll): the feed is read again
every ``POLL_SECONDS``, and the answer leaves as soon as there are events, when ``wait`` is
over (an empty page), when the client has gone, or when the worker stops.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from starlette.requests import Request
from starlette.responses import Response

from cqrs_demo.api.auth import BearerTokens
from cqrs_demo.api.parameters import bad_parameter, exact_decimal, query_parameters, whole_number
from cqrs_demo.api.streams import event_json
from cqrs_demo.domain.text import printable
from cqrs_demo.ports import START, EventStore, FeedEvent, FeedPage, Position

PATH = "/api/events"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_WAIT_SECONDS = 30
# How often a long poll reads the feed again. A notification (store/notifications.py) could
# wake it sooner, but the feed shows an event only once every older transaction has ended,
# so a reader polls anyway; one read per waiting request every 0.1 s is cheap (an index scan
# that finds nothing) and holds no connection in between.
POLL_SECONDS = 0.1
_PARAMETERS = ("after", "limit", "wait")


@dataclass(frozen=True, slots=True)
class FeedQuery:
    """A validated read of the feed: after which position, how many, how long to wait."""

    after: Position
    limit: int
    wait: int


def never() -> bool:
    return False


class FeedEndpoint:
    """A page of the feed; with ``wait``, held until there are events (see the module).
    ``stopping`` tells when the worker stops: a waiting read then answers what it has."""

    def __init__(
        self,
        store: EventStore,
        tokens: BearerTokens,
        *,
        stopping: Callable[[], bool] = never,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._stopping = stopping
        self._poll_seconds = poll_seconds

    async def __call__(self, request: Request) -> Response:
        self._tokens.authorize(request.scope)
        read = feed_query(request.scope["query_string"])
        page = await self._store.read_feed(read.after, read.limit)
        if not page.events and read.wait:
            page = await self._wait_for_events(request, read)
        return _page_response(page)

    async def _wait_for_events(self, request: Request, read: FeedQuery) -> FeedPage:
        """The first page with events within ``read.wait`` seconds; an empty page once the
        time is over, the client has gone or the worker stops."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + read.wait
        while True:
            left = deadline - loop.time()
            if left <= 0 or self._stopping() or await request.is_disconnected():
                return FeedPage((), read.after)
            await asyncio.sleep(min(self._poll_seconds, left))
            page = await self._store.read_feed(read.after, read.limit)
            if page.events:
                return page


def feed_query(query_string: bytes) -> FeedQuery:
    """The read a request asks for; ``Problem`` 400 naming the parameter that is wrong."""
    parameters = query_parameters(query_string, _PARAMETERS)
    after = START
    if "after" in parameters:
        try:
            after = Position.parse(parameters["after"])
        except ValueError:
            shown = printable(parameters["after"])
            raise bad_parameter(
                "after", f"must be a position the feed or a 202 gave, like 812-4077; got {shown}"
            ) from None
    limit = whole_number(parameters, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    wait = whole_number(parameters, "wait", 0, 0, MAX_WAIT_SECONDS)
    return FeedQuery(after, limit, wait)


def _page_response(page: FeedPage) -> Response:
    body = orjson.dumps(
        {"events": [_feed_event_json(event) for event in page.events], "next": str(page.next)},
        default=exact_decimal,
    )
    return Response(body, 200, media_type="application/json")


def _feed_event_json(event: FeedEvent) -> dict[str, object]:
    return {"position": str(event.position), "stream": event.stream, **event_json(event.event)}
