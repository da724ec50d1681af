"""What the HTTP protocol costs per request, in-process: one kept-alive connection fed a
create-order request at a time, answered by a bare ASGI app, on uvloop, without a socket.

Prints microseconds per request for each ``--variant``, alternated ``--rounds`` times:

- ``edge``: the service's protocol (``http_edge.EdgeProtocol``: write coalescing and the
  HTTP edge's limits);
- ``unguarded``: the protocol without the edge's limits (``CoalescingHttpToolsProtocol``);
- ``h11``: uvicorn's pure-Python h11 protocol, whose ``h11_max_incomplete_event_size``
  is the one head limit uvicorn offers.

    .venv/bin/python -m tests.bench.edge_path [--variants edge,unguarded,h11]
"""

import argparse
import asyncio
import gc
import time
from typing import Any

import uvicorn
import uvloop
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from cqrs_demo.http_edge import Edge, EdgeLimits, EdgeProtocol
from cqrs_demo.http_protocol import CoalescingHttpToolsProtocol

BODY = b'{"user_id":"user_123","product_id":"prod_456","quantity":2,"total_price":150.00}'
REQUEST = (
    b"POST /api/commands/order/create HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)
VARIANTS = ("edge", "unguarded", "h11")


class NullTransport(asyncio.Transport):
    """Takes every write, reports a peer, closes nothing."""

    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        pass


async def _accepted(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


def _protocol(variant: str) -> asyncio.Protocol:
    config = uvicorn.Config(_accepted, lifespan="off", log_config=None, access_log=False)
    if variant == "h11":
        return H11Protocol(config, ServerState(), {})
    if variant == "unguarded":
        return CoalescingHttpToolsProtocol(config, ServerState(), {})
    limits = EdgeLimits(max_connections=4096, head_bytes=16_384, url_bytes=8192, head_seconds=10)
    return EdgeProtocol.serving(Edge(limits))(config, ServerState(), {})


async def measure(variant: str, requests: int) -> float:
    """Microseconds of one request through ``variant``, the app's answer included."""
    protocol = _protocol(variant)
    protocol.connection_made(NullTransport())
    timed = 0.0
    for round_ in (requests // 10, requests):  # a warm-up, then the measured requests
        started = time.perf_counter()
        for _ in range(round_):
            protocol.data_received(REQUEST)
            await asyncio.sleep(0)  # the request's task runs
            await asyncio.sleep(0)  # the response completes
        timed = time.perf_counter() - started
    return timed / requests * 1e6


async def run(variants: list[str], rounds: int, requests: int) -> None:
    for number in range(1, rounds + 1):
        for variant in variants:
            microseconds = await measure(variant, requests)
            print(f"round {number} {variant}: {microseconds:.2f} us per request", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20_000)
    options = parser.parse_args()
    variants = options.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        raise SystemExit(f"unknown variants: {', '.join(sorted(unknown))}")
    gc.freeze()
    uvloop.run(run(variants, options.rounds, options.requests))


if __name__ == "__main__":
    main()
