"""The query API: the read models over HTTP, each answer at a stated position.

``GET /api/queries/orders/{order_id}``, ``GET /api/queries/users/{user_id}/orders`` and
``GET /api/queries/users/{user_id}/summary``. Every answer (404 included) carries the
position of the projection it read in ``Projection-Position``. With ``min_position`` (a
position a command's 202 gave), a query answers only at or past it: it waits up to
``wait_ms`` for the projection, then answers 503 naming both positions. Never stale
without saying so.
"""

import asyncio
import base64
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar
from urllib.parse import quote, urlencode

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
from cqrs_demo.api.problems import POSITION_HEADER
from cqrs_demo.domain.fields import FieldRefused, identifier
from cqrs_demo.domain.text import printable
from cqrs_demo.ports import (
    ORDER_STATUSES,
    ORDERS_PROJECTION,
    SUMMARIES_PROJECTION,
    OrderKey,
    OrderNotProjected,
    OrderQueries,
    OrderSummary,
    OrderView,
    Position,
    Projected,
    ProjectionBehind,
)

# ``text``: any characters (``parameters.register_text``).
ORDER_PATH = "/api/queries/orders/{order_id:text}"
USER_ORDERS_PATH = "/api/queries/users/{user_id:text}/orders"
USER_SUMMARY_PATH = "/api/queries/users/{user_id:text}/summary"
QUERY_PATHS = (ORDER_PATH, USER_ORDERS_PATH, USER_SUMMARY_PATH)
_ORDERS_PREFIX = b"/api/queries/orders/"
_USERS_PREFIX = b"/api/queries/users/"
_ORDERS_PATH_PREFIX = _ORDERS_PREFIX.decode()
_USERS_PATH_PREFIX = _USERS_PREFIX.decode()
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
DEFAULT_WAIT_MS = 2000
MAX_WAIT_MS = 10_000
MAX_CURSOR_LENGTH = 1024
# How often a query reads again when its read after the wait was still behind (another
# standby than the one the wait read): as often as the wait polls (``PositionWatch``).
REREAD_SECONDS = 0.010
_CURSOR = re.compile(r"[A-Za-z0-9_-]+")
_FRESHNESS = ("min_position", "wait_ms")
_LISTING = ("status", "limit", "after", *_FRESHNESS)

T = TypeVar("T")


def route_for(path: str) -> str | None:
    """The path of the query route (``ORDER_PATH``, ``USER_ORDERS_PATH``,
    ``USER_SUMMARY_PATH``, tried in that order) that Starlette's router would match a GET of
    ``path`` with; ``None`` for any other path. For ``app.HotPathsFirst``, which passes the
    router."""
    if path.startswith(_ORDERS_PATH_PREFIX):
        return ORDER_PATH
    if path.startswith(_USERS_PATH_PREFIX):
        user_path = path[len(_USERS_PATH_PREFIX) :]
        if user_path.endswith("/orders"):
            return USER_ORDERS_PATH
        if user_path.endswith("/summary"):
            return USER_SUMMARY_PATH
    return None


@dataclass(frozen=True, slots=True)
class Freshness:
    """How fresh an answer must be: at or past ``wanted`` (``None``: as it is), waiting
    for the projection at most ``wait_ms``."""

    wanted: Position | None
    wait_ms: int


@dataclass(frozen=True, slots=True)
class Listing:
    """A validated page request of a user's orders."""

    user_id: str
    status: str | None
    after: OrderKey | None
    limit: int


class QueryEndpoints:
    """The three queries over ``read_models``; tokens as for the commands."""

    def __init__(self, read_models: OrderQueries, tokens: BearerTokens) -> None:
        self._read_models = read_models
        self._tokens = tokens

    def endpoints(self) -> dict[str, Callable[[Request], Awaitable[Response]]]:
        """Each query's endpoint by its route's path (``QUERY_PATHS``)."""
        return {
            ORDER_PATH: self.order,
            USER_ORDERS_PATH: self.user_orders,
            USER_SUMMARY_PATH: self.user_summary,
        }

    async def order(self, request: Request) -> Response:
        self._tokens.authorize(request.scope)
        order_id = path_identifier(request.scope["raw_path"], _ORDERS_PREFIX, b"", "order_id")
        freshness = _freshness(query_parameters(request.scope["query_string"], _FRESHNESS))
        read = await self._fresh(
            ORDERS_PROJECTION, freshness, lambda: self._read_models.order(order_id)
        )
        if read.value is None:
            raise OrderNotProjected(order_id, read.position)
        request.scope["state"]["aggregate"] = read.value.user_id
        return _answer(_order_json(read.value), read.position)

    async def user_orders(self, request: Request) -> Response:
        self._tokens.authorize(request.scope)
        user_id = _user_id(request, b"/orders")
        parameters = query_parameters(request.scope["query_string"], _LISTING)
        listing = _listing(user_id, parameters)
        read = await self._fresh(
            ORDERS_PROJECTION,
            _freshness(parameters),
            lambda: self._read_models.user_orders(
                user_id, status=listing.status, after=listing.after, limit=listing.limit
            ),
        )
        body = {"user_id": user_id, "orders": [_order_json(order) for order in read.value.orders]}
        response = _answer(body, read.position)
        if read.value.next is not None:
            response.headers["Link"] = f'<{_next_url(listing, read.value.next)}>; rel="next"'
        return response

    async def user_summary(self, request: Request) -> Response:
        self._tokens.authorize(request.scope)
        user_id = _user_id(request, b"/summary")
        freshness = _freshness(query_parameters(request.scope["query_string"], _FRESHNESS))
        read = await self._fresh(
            SUMMARIES_PROJECTION, freshness, lambda: self._read_models.user_summary(user_id)
        )
        return _answer(_summary_json(read.value), read.position)

    async def _fresh(
        self, projection: str, freshness: Freshness, read: Callable[[], Awaitable[Projected[T]]]
    ) -> Projected[T]:
        """``read()``'s answer, at or past ``freshness.wanted``: read at once, and if the
        projection is behind, wait for it (holding no connection) and read again. Raises
        ``ProjectionBehind`` when it is still behind after ``freshness.wait_ms``, or at once
        when it is stopped short of the position.

        The read after the wait can find the projection behind again: on a read pool naming
        several standbys it may land on one whose replay is behind the one the wait read
        (and a rebuild swapped in starts over). Then it reads again every
        ``REREAD_SECONDS``, each time on the pool's next connection, within the same
        ``wait_ms``: never an answer behind ``wanted``."""
        answer = await read()
        wanted = freshness.wanted
        if wanted is None or answer.position >= wanted:
            return answer
        started = time.monotonic()
        deadline = started + freshness.wait_ms / 1000
        standing = await self._read_models.wait_for(
            projection, wanted, wait_seconds=freshness.wait_ms / 1000
        )
        reached, stopped_at = standing.position, standing.stopped_at
        if reached >= wanted:
            while True:
                answer = await read()
                if answer.position >= wanted:
                    return answer
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(REREAD_SECONDS)
            reached, stopped_at = answer.position, None
        waited_ms = round((time.monotonic() - started) * 1000)
        raise ProjectionBehind(
            projection, wanted, reached, waited_ms=waited_ms, stopped_at=stopped_at
        )


def _user_id(request: Request, suffix: bytes) -> str:
    user_id = path_identifier(request.scope["raw_path"], _USERS_PREFIX, suffix, "user_id")
    request.scope["state"]["aggregate"] = user_id
    return user_id


def _freshness(parameters: dict[str, str]) -> Freshness:
    """``min_position`` and ``wait_ms``; ``Problem`` 400 naming the one that is wrong."""
    wait_ms = whole_number(parameters, "wait_ms", DEFAULT_WAIT_MS, 0, MAX_WAIT_MS)
    text = parameters.get("min_position")
    if text is None:
        return Freshness(None, wait_ms)
    try:
        return Freshness(Position.parse(text), wait_ms)
    except ValueError:
        raise bad_parameter(
            "min_position",
            f"must be a position as a command's answer gives it, like 812-4051;"
            f" got {printable(text)!r}",
        ) from None


def _listing(user_id: str, parameters: dict[str, str]) -> Listing:
    status = parameters.get("status")
    if status is not None and status not in ORDER_STATUSES:
        raise bad_parameter("status", f"must be placed or cancelled, got {printable(status)!r}")
    limit = whole_number(parameters, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    after = parameters.get("after")
    return Listing(user_id, status, None if after is None else _cursor_key(after), limit)


def _cursor(key: OrderKey) -> str:
    """The opaque ``after`` of the page that follows ``key``."""
    text = orjson.dumps([key.placed_at.isoformat(), key.order_id])
    return base64.urlsafe_b64encode(text).rstrip(b"=").decode("ascii")


def _cursor_key(cursor: str) -> OrderKey:
    """The key ``_cursor`` wrote; ``Problem`` 400 naming ``after`` for anything else."""
    key = None
    if len(cursor) <= MAX_CURSOR_LENGTH and _CURSOR.fullmatch(cursor):
        with contextlib.suppress(ValueError, TypeError, FieldRefused):
            key = _key(orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))))
    if key is None:
        raise bad_parameter(
            "after", "is not a cursor of this list; take it from the Link of the page before"
        )
    return key


def _key(decoded: object) -> OrderKey | None:
    """The key in a cursor's JSON, ``[placed_at, order_id]``; ``None`` if it is not one."""
    if not isinstance(decoded, list) or len(decoded) != 2 or not isinstance(decoded[0], str):
        return None
    placed_at = datetime.fromisoformat(decoded[0])
    if placed_at.tzinfo is None:
        return None
    return OrderKey(placed_at, identifier("after", decoded[1]))


def _next_url(listing: Listing, following: OrderKey) -> str:
    parameters = {"limit": str(listing.limit), "after": _cursor(following)}
    if listing.status is not None:
        parameters["status"] = listing.status
    user = quote(listing.user_id, safe="")
    return f"/api/queries/users/{user}/orders?{urlencode(parameters)}"


def _answer(body: object, position: Position) -> Response:
    content = orjson.dumps(body, default=exact_decimal)
    headers = {POSITION_HEADER: str(position)}
    return Response(content, 200, headers=headers, media_type="application/json")


def _order_json(order: OrderView) -> dict[str, object]:
    return {
        "order_id": order.order_id,
        "user_id": order.user_id,
        "product_id": order.product_id,
        "quantity": order.quantity,
        "total_price": order.total_price,
        "status": order.status,
        "placed_at": order.placed_at.isoformat(),
        "cancelled_at": _time(order.cancelled_at),
        "reason": order.reason,
    }


def _summary_json(summary: OrderSummary) -> dict[str, object]:
    return {
        "user_id": summary.user_id,
        "orders_placed": summary.orders_placed,
        "orders_cancelled": summary.orders_cancelled,
        "open_orders": summary.open_orders,
        "open_total": summary.open_total,
        "last_order_at": _time(summary.last_order_at),
    }


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
