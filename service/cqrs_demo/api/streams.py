"""Reading a stream over HTTP: ``GET /api/streams/{aggregate_id}/events``."""

from dataclasses import dataclass
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response

from cqrs_demo.api.auth import BearerTokens
from cqrs_demo.api.parameters import (
    bad_parameter,
    exact_decimal,
    path_identifier,
    query_parameters,
    whole_number,
)
from cqrs_demo.api.problems import Problem
from cqrs_demo.domain.fields import MAX_VERSION
from cqrs_demo.domain.text import printable
from cqrs_demo.ports import Direction, EventStore, RecordedEvent, StreamSlice

PATH = "/api/streams/{aggregate_id:text}/events"  # parameters.register_text
_PREFIX = b"/api/streams/"
_SUFFIX = b"/events"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_PARAMETERS = ("from_version", "limit", "direction")


@dataclass(frozen=True, slots=True)
class StreamQuery:
    """A validated read: which stream, from where, how many, which way."""

    aggregate_id: str
    from_version: int | None
    limit: int
    direction: Direction


class StreamEndpoint:
    """The events of one stream, a page at a time, with its version as the ``ETag`` and a
    ``Link`` to the next page when there is one; 404 for a stream with no events."""

    def __init__(self, store: EventStore, tokens: BearerTokens) -> None:
        self._store = store
        self._tokens = tokens

    async def __call__(self, request: Request) -> Response:
        self._tokens.authorize(request.scope)
        read = stream_query(request.scope["raw_path"], request.scope["query_string"])
        request.scope["state"]["aggregate"] = read.aggregate_id
        page = await self._store.read_stream(
            read.aggregate_id,
            from_version=read.from_version,
            limit=read.limit,
            direction=read.direction,
        )
        if page.stream_version == 0:
            raise Problem(
                404,
                f"stream {printable(read.aggregate_id)!r} has no events",
                problem_type="urn:cqrs-demo:stream-not-found",
                aggregate_id=read.aggregate_id,
            )
        return _page_response(read, page)


def stream_query(raw_path: bytes, query_string: bytes) -> StreamQuery:
    """The read a request asks for; ``Problem`` 400 naming the parameter that is wrong."""
    aggregate_id = path_identifier(raw_path, _PREFIX, _SUFFIX, "aggregate_id")
    parameters = query_parameters(query_string, _PARAMETERS)
    direction_text = parameters.get("direction", "forward")
    if direction_text not in ("forward", "backward"):
        raise bad_parameter(
            "direction", f"must be forward or backward, got {printable(direction_text)}"
        )
    limit = whole_number(parameters, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    from_version = None
    if "from_version" in parameters:
        from_version = whole_number(parameters, "from_version", 1, 1, MAX_VERSION)
    return StreamQuery(aggregate_id, from_version, limit, Direction(direction_text))


def _page_response(read: StreamQuery, page: StreamSlice) -> Response:
    body = orjson.dumps(
        {
            "aggregate_id": read.aggregate_id,
            "stream_version": page.stream_version,
            "direction": read.direction.value,
            "events": [event_json(event) for event in page.events],
        },
        default=exact_decimal,
    )
    headers = {"ETag": f'"{page.stream_version}"'}
    following = _next_version(read, page)
    if following is not None:
        url = (
            f"/api/streams/{quote(read.aggregate_id, safe='')}/events"
            f"?from_version={following}&limit={read.limit}&direction={read.direction.value}"
        )
        headers["Link"] = f'<{url}>; rel="next"'
    return Response(body, 200, headers=headers, media_type="application/json")


def _next_version(read: StreamQuery, page: StreamSlice) -> int | None:
    """Where the next page starts, if there are events beyond this one."""
    if not page.events or len(page.events) < read.limit:
        return None
    last = page.events[-1].version
    if read.direction is Direction.FORWARD:
        return last + 1 if last < page.stream_version else None
    return last - 1 if last > 1 else None


def event_json(event: RecordedEvent) -> dict[str, object]:
    """A stored event as the reads write it (with ``default=exact_decimal``)."""
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "version": event.version,
        "occurred_on": event.occurred_on.isoformat(),
        "payload": event.payload,
        "metadata": event.metadata,
    }
