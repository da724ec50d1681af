"""CPU per command of the API layer alone: the ASGI app in-process, no HTTP, no database.

Calls the application the service runs (``api.app.build_app``) with a ready-made request
for ``POST /api/commands/order/create`` and a store that answers at once, with the access
log at INFO written to /dev/null in the journal's format, and prints microseconds of CPU per
command. What it leaves out (uvicorn's HTTP parsing, the socket, the store's SQL) is
measured by ``tests/bench/run``. With ``--profile``, also cProfile's top functions.

    .venv/bin/python -m tests.bench.api_path [--commands N] [--profile]
    PYTHONPATH=OTHER_TREE/service .venv/bin/python -m tests.bench.api_path   # another build
"""

import argparse
import cProfile
import logging
import os
import pstats
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import uvloop
from starlette.types import ASGIApp

from cqrs_demo.api.app import build_app
from cqrs_demo.api.auth import BearerTokens
from cqrs_demo.api.body import BodyRules
from cqrs_demo.domain.events import DomainEvent
from cqrs_demo.logs import configure_logging
from cqrs_demo.ports import (
    START,
    Appended,
    Direction,
    FeedPage,
    IdempotencyKey,
    Position,
    StreamSlice,
)

BODY = b'{"user_id":"u-12345678-abc-1-77","product_id":"prod_456","quantity":2,"total_price":150.0}'
PATH = "/api/commands/order/create"


class AnswersAtOnce:
    """An ``EventStore`` whose appends succeed without I/O, at version 1, and whose streams
    are all empty (the path measured here never reads one)."""

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
        return Appended(1, tuple(event.event_id for event in events), result or {}, START)

    async def read_stream(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        limit: int | None = None,
        direction: Direction = Direction.FORWARD,
    ) -> StreamSlice:
        return StreamSlice((), 0)

    async def recorded_outcome(self, idempotency: IdempotencyKey) -> Appended | None:
        return None

    async def read_feed(self, after: Position, limit: int) -> FeedPage:
        return FeedPage((), after)


async def always_ready() -> int:
    return 0


async def _commands(app: ASGIApp, count: int) -> None:
    headers = [
        (b"host", b"127.0.0.1:8080"),
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(BODY)),
    ]
    for _ in range(count):
        sent: list[Mapping[str, object]] = []
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": PATH,
            "raw_path": PATH.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8080),
            "state": {},
        }

        async def receive() -> Mapping[str, object]:
            return {"type": "http.request", "body": BODY, "more_body": False}

        async def send(message: Mapping[str, object]) -> None:
            sent.append(message)  # noqa: B023 - each command's own list, awaited in its turn

        await app(scope, receive, send)  # type: ignore[arg-type]
        if sent[0]["status"] != 202:
            raise SystemExit(f"the app answered {sent}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args()
    os.environ["JOURNAL_STREAM"] = "0:0"  # the journal's line format, as under systemd
    with Path(os.devnull).open("w") as devnull:
        os.dup2(devnull.fileno(), 2)
    configure_logging("info")
    app = build_app(
        store=AnswersAtOnce(),
        check_ready=always_ready,
        tokens=BearerTokens(()),
        body=BodyRules(limit=65_536, seconds=10.0),
    )
    uvloop.run(_commands(app, 2_000))  # warm up
    started = time.process_time()
    uvloop.run(_commands(app, options.commands))
    cpu = time.process_time() - started
    print(f"{options.commands} commands: {cpu / options.commands * 1e6:.1f} us CPU per command")
    if options.profile:
        profile = cProfile.Profile()
        profile.runcall(uvloop.run, _commands(app, options.commands))
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    logging.shutdown()


if __name__ == "__main__":
    main()
