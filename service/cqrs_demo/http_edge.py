"""The HTTP edge: what one client connection may take of a worker, and the answers to those
that take more.

uvicorn's httptools protocol bounds neither the size of a request head nor the time it
takes to arrive, keeps every connection it accepts until the open-file limit stops the
worker, answers a malformed request in plain text, and on a parse error closes the
connection at once, dropping the answer to a request already being handled
(docs/architecture.md, "The HTTP edge"). ``EdgeProtocol`` adds what is missing; every
limit and its answer is listed in docs/security.md:

- a head (request line and headers) over ``head_bytes`` gets 431 as soon as the byte past
  the limit arrives, however the head is split; a URL over ``url_bytes`` gets 414;
- a head not complete within ``head_seconds`` of the connection's start (on a kept-alive
  connection, of its first byte) ends the connection: with 408 if part of it came;
- at ``max_connections`` a new connection ends the one that has waited longest without a
  request in flight; only when every connection has one does the newcomer get 503;
- every refusal is problem+json, follows the answers to the requests before it on the
  connection, and ends the connection; each limit hit is logged.
"""

import asyncio
import logging
from dataclasses import dataclass
from typing import ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

from cqrs_demo.api.problems import problem_body
from cqrs_demo.domain.text import printable
from cqrs_demo.http_protocol import CoalescingHttpToolsProtocol
from cqrs_demo.logs import BurstLog

log = logging.getLogger("cqrs_demo.http")

# After a refusal the connection is half-closed and read (and discarded) until the client
# closes it, for at most this long: closing a socket with unread bytes sends a reset, which
# can destroy the answer before the client reads it.
LINGER_SECONDS = 1.0
# A burst of limits hit is one log line a kind, then one line counting the rest.
LOG_WINDOW_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """What one connection may take of a worker (``CQRS_MAX_CONNECTIONS`` and so on)."""

    max_connections: int
    head_bytes: int
    url_bytes: int
    head_seconds: float


class Edge:
    """One worker's connections: those without a request in flight, longest waiting first,
    and the log of limits hit. Made for a worker, shared by its connections.

    Heads that take too long are found by one sweep of the waiting connections every
    ``sweep_seconds`` (a quarter of the head timeout, at most a second), rather than by a
    timer per request: arming and cancelling one cost each request more than the rest of
    the edge (docs/performance.md). A late head is ended within ``head_seconds`` plus one
    sweep."""

    def __init__(self, limits: EdgeLimits) -> None:
        self.limits = limits
        self.waiting: dict[EdgeProtocol, None] = {}  # insertion-ordered: oldest first
        self.log = BurstLog(log, LOG_WINDOW_SECONDS)
        self.sweep_seconds = min(1.0, limits.head_seconds / 4)
        self._sweeping = False

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the sweeps on ``loop`` (the worker's), once."""
        if not self._sweeping:
            self._sweeping = True
            loop.call_later(self.sweep_seconds, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for connection in [c for c in self.waiting if c.head_late(now)]:
            connection.end_late_head()
        loop.call_later(self.sweep_seconds, self._sweep, loop)


class _Refused(Exception):
    """Raised from a parser callback to stop parsing: the connection is refused."""

    def __init__(self, status: int, detail: str, kind: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind


class EdgeProtocol(CoalescingHttpToolsProtocol):
    edge: ClassVar[Edge]

    @classmethod
    def serving(cls, edge: Edge) -> type["EdgeProtocol"]:
        """This protocol for one worker's server: its connections share ``edge``."""
        return type(cls.__name__, (cls,), {"edge": edge})

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        limits = self.edge.limits
        self._refusal: bytes | None = None
        self._in_head = True  # the next byte belongs to a request head
        self._head_room = limits.head_bytes
        self._linger: asyncio.TimerHandle | None = None
        self._head_since: float | None = self.loop.time()  # when the head's clock started
        self._unanswered = 0  # requests read on this connection and not yet answered
        crowded = len(self.connections) >= limits.max_connections
        super().connection_made(transport)
        if crowded and not self._make_room():
            self._refuse(
                _Refused(
                    503,
                    f"the server is at its limit of {limits.max_connections} connections,"
                    " each with a request in flight; retry shortly",
                    "connections refused at the connection limit",
                )
            )
            return
        self.edge.waiting[self] = None
        self.edge.watch(self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        self.edge.waiting.pop(self, None)
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # refused: read only to let the client finish, then discarded
        self._unset_keepalive_if_required()
        if self._in_head:
            if len(data) > self._head_room:
                self._feed_head_in_pieces(data)
                return
            self._head_room -= len(data)
        self._feed(data)

    def _feed_head_in_pieces(self, data: bytes) -> None:
        """Feed ``data``, which may hold more than the head has room for, in pieces no larger
        than that room: the byte past the limit is found whatever the split."""
        while self._in_head and len(data) > self._head_room:
            if self._head_room == 0:
                self._refuse(self._head_too_large())
                return
            piece, data = data[: self._head_room], data[self._head_room :]
            self._head_room = 0
            if not self._feed(piece):
                return
        if data:
            self.data_received(data)

    def _feed(self, data: bytes) -> bool:
        """Parse ``data``; whether the connection is still open to more."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            # uvicorn's own callbacks fail on some input too (a URL that is not ASCII).
            refused = cause if isinstance(cause, _Refused) else _malformed(str(cause))
            self._refuse(refused)
            return False
        except httptools.HttpParserError as error:
            self._refuse(_malformed(str(error)))
            return False
        return True

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_since is None:
            self._head_since = self.loop.time()

    def _head_too_large(self) -> _Refused:
        """414 while the URL is still arriving (it is past its own limit), else 431."""
        limits = self.edge.limits
        if not self.headers and len(self.url) > limits.url_bytes:
            return _url_too_long(limits.url_bytes)
        return _Refused(
            431,
            f"the request head (request line and headers) is larger than {limits.head_bytes} bytes",
            f"request heads over {limits.head_bytes} bytes refused",
        )

    def on_headers_complete(self) -> None:
        if len(self.url) > self.edge.limits.url_bytes:
            raise _url_too_long(self.edge.limits.url_bytes)
        self._in_head = False
        self._head_since = None
        self.edge.waiting.pop(self, None)
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not before:  # a request to answer (not a protocol upgrade)
            self._unanswered += 1

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_room = self.edge.limits.head_bytes

    def on_response_complete(self) -> None:
        self._unanswered -= 1
        super().on_response_complete()
        if self._unanswered:
            return
        if self._refusal is None:
            self.edge.waiting[self] = None  # last in line: waited least (until closed)
        elif not self.transport.is_closing():
            self._answer_refusal()

    def head_late(self, now: float) -> bool:
        """Whether this connection's head has taken longer than the limit at ``now``."""
        since = self._head_since
        return since is not None and now - since >= self.edge.limits.head_seconds

    def end_late_head(self) -> None:
        """The head took too long: 408 if part of it came, else close without a word."""
        self._head_since = None
        seconds = self.edge.limits.head_seconds
        if self._head_room < self.edge.limits.head_bytes:  # part of a head came
            self._refuse(
                _Refused(
                    408,
                    f"the request head was not received within {seconds:g} s",
                    f"request heads not complete within {seconds:g} s refused",
                )
            )
            return
        self.edge.waiting.pop(self, None)
        self.edge.log.hit(
            f"connections closed after sending nothing for {seconds:g} s",
            f"closed a connection from {self._peer()} that sent nothing for {seconds:g} s",
        )
        self.transport.close()

    def _make_room(self) -> bool:
        """End the connection that has waited longest without a request in flight;
        whether there was one."""
        oldest = next(iter(self.edge.waiting), None)
        if oldest is None:
            return False
        del self.edge.waiting[oldest]
        self.edge.log.hit(
            "connections closed at the connection limit",
            f"at the limit of {self.edge.limits.max_connections} connections: closed the one"
            f" from {oldest._peer()}, waiting the longest without a request",
        )
        oldest.transport.close()
        return True

    def _refuse(self, refused: _Refused) -> None:
        """Answer ``refused`` once the requests read before it are answered; end the
        connection then."""
        self.edge.waiting.pop(self, None)
        self._head_since = None
        headers = {"Retry-After": "1"} if refused.status == 503 else {}
        self._refusal = _raw_problem(refused.status, refused.detail, headers)
        self.edge.log.hit(refused.kind, f"{refused.status} to {self._peer()}: {refused.detail}")
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_started:
            self._drop(cycle)
        if not self._unanswered:
            self._answer_refusal()

    def _drop(self, cycle: RequestResponseCycle) -> None:
        """The bytes refused were inside ``cycle``'s body: that request is the malformed
        one, and the refusal is its answer. Its body ends (the endpoint reads a disconnect)
        and whatever the endpoint answers goes nowhere."""
        for queued in [entry for entry in self.pipeline if entry[0] is cycle]:
            self.pipeline.remove(queued)
        cycle.disconnected = True
        cycle.message_event.set()
        self._unanswered -= 1

    def _answer_refusal(self) -> None:
        assert self._refusal is not None
        self.transport.write(self._refusal)
        self.flow.resume_reading()  # to see the client close (eof_received closes ours)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._linger = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "an unknown client"


def _url_too_long(limit: int) -> _Refused:
    return _Refused(414, f"the URL is longer than {limit} bytes", "long URLs refused")


def _malformed(reason: str) -> _Refused:
    return _Refused(
        400, f"malformed HTTP request: {printable(reason, 120)}", "malformed requests refused"
    )


def _raw_problem(status: int, detail: str, headers: dict[str, str]) -> bytes:
    """A whole problem+json answer that closes the connection, as bytes on the wire."""
    body = problem_body(status, detail)
    head = [
        STATUS_LINE[status],
        b"content-type: application/problem+json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
        *(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items()),
        b"\r\n",
    ]
    return b"".join(head) + body
