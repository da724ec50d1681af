"""One log line per request: method, path, status, duration, and the stream it touched."""

import asyncio
import functools
import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cqrs_demo.api.commands import COMMANDS
from cqrs_demo.api.feed import never
from cqrs_demo.api.problems import answer_if_stopping
from cqrs_demo.domain.text import printable
from cqrs_demo.logs import log_line
from cqrs_demo.metrics.tally import TALLY

log = logging.getLogger("cqrs_demo.request")

_QUIET_PATHS = frozenset({"/healthz", "/readyz"})
# What an endpoint may leave in scope["state"] for the line; never a payload value. Text
# among them (an aggregate id) is the client's: shown escaped, as paths are.
_DETAILS = ("aggregate", "version", "events", "client")
# Paths that are their own route template: the commands' (``app.HotPathsFirst`` answers
# them before Starlette's router and leaves no route in the scope; the queries it answers
# carry theirs, as the router's requests do).
_COMMAND_PATHS = frozenset(spec.path for spec in COMMANDS)
UNMATCHED_ROUTE = "unmatched"


class AccessLog:
    """ASGI middleware. Commands log at INFO (errors at WARNING for 4xx, ERROR for 5xx),
    probes at DEBUG. Values of the request body are never logged; the aggregate and version
    come from ``scope["state"]``, where the endpoint leaves them. A request cut short by the
    worker's stop (``stopping()`` true) is answered 503, as ``app.HotPathsFirst`` answers
    the commands and queries."""

    def __init__(self, app: ASGIApp, stopping: Callable[[], bool] = never) -> None:
        self.app = app
        self._stopping = stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except asyncio.CancelledError:
            status = await answer_if_stopping(self._stopping, scope, receive, send)
        finally:
            log_request(scope, status, time.perf_counter() - started)


def log_request(scope: Scope, status: int, seconds: float) -> None:
    """The line for one request: ``POST /path 202 1.2ms aggregate=… version=…``; and the
    request counted in the metrics, when they are on (``metrics.tally``)."""
    path = scope["path"]
    if TALLY.on:
        TALLY.request(route_template(scope), status, seconds)
    level = logging.INFO
    if path in _QUIET_PATHS and status < 400:
        level = logging.DEBUG
    elif status >= 500:
        level = logging.ERROR
    elif status >= 400:
        level = logging.WARNING
    if not log.isEnabledFor(level):
        return
    state = scope.get("state", {})
    details = ""
    for name in _DETAILS:
        value = state.get(name)
        if isinstance(value, str):
            details += f" {name}={value if value.isprintable() else printable(value, 255)}"
        elif value is not None:
            details += f" {name}={value}"
    line = f"{_request(scope['method'], path)} {status} {seconds * 1000:.1f}ms{details}"
    log_line(log, level, line)


def route_template(scope: Scope) -> str:
    """The route a request was answered by, as written in the route table (``/api/orders/
    {order_id}``, never the path with the id in it); ``UNMATCHED_ROUTE`` for a path that
    no route matches, so that clients cannot make up label values."""
    route = scope.get("route")
    if route is not None:
        return str(route.path)
    path: str = scope["path"]
    return path if path in _COMMAND_PATHS else UNMATCHED_ROUTE


@functools.lru_cache(maxsize=256)
def _request(method: str, path: str) -> str:
    """``METHOD /path`` as shown in the log (client-supplied text made printable)."""
    return f"{printable(method, 16)} {printable(path, 200)}"
