"""``--freshness``: how long after its 202 a command is visible in the query API, under a
steady load of commands, with the projector running as its unit runs it.

The load: ``connections`` keep-alive connections, each sending at a fixed pace so that
together they send ``rate`` commands/s (a connection whose answer is late sends its next
at once, then keeps the pace): four in five create an order of one of its users, the
fifth cancels an order it created (from the 202's ``order_id``). Beside it, a prober
creates an order every ``probe_every`` seconds and, at its 202, asks
``GET /api/queries/orders/{order_id}?min_position=P&wait_ms=2000`` (P: the 202's
position): the server answers once the projection has reached P. The time from the 202 to
that answer is the command's freshness. Anything but a 202 or a 200 fails the run.
"""

import asyncio
import itertools
import statistics
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

WAIT_MS = 2000


@dataclass
class Freshness:
    """What one run measured."""

    seconds: float = 0.0
    commands: int = 0  # 202s of the load
    probes_ms: list[float] = field(default_factory=list)  # 202 -> visible, per probe
    statuses: Counter[int] = field(default_factory=Counter)  # anything but 202/200

    @property
    def rate(self) -> float:
        return self.commands / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.probes_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def describe(self) -> str:
        if not self.probes_ms:
            return f"freshness: no probe answered; statuses {dict(self.statuses)}"
        return (
            f"freshness at {self.rate:,.0f} commands/s for {self.seconds:.0f} s: "
            f"{len(self.probes_ms)} probes, 202 -> visible p50 {self.percentile(0.5):.1f} ms, "
            f"p90 {self.percentile(0.9):.1f}, p99 {self.percentile(0.99):.1f}, "
            f"max {max(self.probes_ms):.1f}, mean {statistics.fmean(self.probes_ms):.1f}; "
            f"other answers: {dict(self.statuses) or 'none'}"
        )


class Connection:
    """One keep-alive HTTP/1.1 connection; requests one at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        assert self.reader is not None
        assert self.writer is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _create(user: str) -> bytes:
    return orjson.dumps(
        {"user_id": user, "product_id": "prod_456", "quantity": 2, "total_price": 150.0}
    )


async def _load(
    url: str, number: int, pace: float, until: float, result: Freshness, tag: str
) -> None:
    """One connection of the load: a command every ``pace`` seconds until ``until``."""
    parts = urlsplit(url)
    connection = Connection(parts.hostname or "127.0.0.1", parts.port or 80)
    await connection.open()
    opened: deque[tuple[str, str]] = deque()
    users = [f"fresh-{tag}-{number}-{index}" for index in range(50)]
    next_at = time.monotonic()
    try:
        for count in itertools.count():
            now = time.monotonic()
            if now >= until:
                return
            if next_at > now:
                await asyncio.sleep(next_at - now)
            next_at = max(next_at + pace, time.monotonic() - pace)
            user = users[count % len(users)]
            if count % 5 == 4 and opened:
                user, order = opened.popleft()
                body = orjson.dumps({"user_id": user, "order_id": order, "reason": "bench"})
                status, answer = await connection.request(
                    "POST", "/api/commands/order/cancel", body
                )
            else:
                status, answer = await connection.request(
                    "POST", "/api/commands/order/create", _create(user)
                )
                if status == 202:
                    opened.append((user, orjson.loads(answer)["order_id"]))
            if status == 202:
                result.commands += 1
            else:
                result.statuses[status] += 1
    finally:
        connection.close()


async def _probe(url: str, every: float, until: float, result: Freshness, tag: str) -> None:
    """Create an order every ``every`` seconds; time its 202 to its visibility."""
    parts = urlsplit(url)
    commands = Connection(parts.hostname or "127.0.0.1", parts.port or 80)
    queries = Connection(parts.hostname or "127.0.0.1", parts.port or 80)
    await commands.open()
    await queries.open()
    try:
        for count in itertools.count():
            if time.monotonic() >= until:
                return
            status, answer = await commands.request(
                "POST", "/api/commands/order/create", _create(f"probe-{tag}-{count}")
            )
            accepted = time.monotonic()
            if status != 202:
                result.statuses[status] += 1
                continue
            body = orjson.loads(answer)
            path = (
                f"/api/queries/orders/{body['order_id']}"
                f"?min_position={body['position']}&wait_ms={WAIT_MS}"
            )
            status, _ = await queries.request("GET", path)
            if status == 200:
                result.probes_ms.append(1000 * (time.monotonic() - accepted))
            else:
                result.statuses[status] += 1
            await asyncio.sleep(max(0.0, every - (time.monotonic() - accepted)))
    finally:
        commands.close()
        queries.close()


async def _measure(
    url: str, rate: float, seconds: float, connections: int, probe_every: float, tag: str
) -> Freshness:
    result = Freshness()
    started = time.monotonic()
    until = started + seconds
    pace = connections / rate
    await asyncio.gather(
        *(_load(url, number, pace, until, result, tag) for number in range(connections)),
        _probe(url, probe_every, until, result, tag),
    )
    result.seconds = time.monotonic() - started
    return result


def measure(
    url: str,
    *,
    rate: float,
    seconds: float,
    connections: int = 16,
    probe_every: float = 0.01,
    tag: str = "",
) -> Freshness:
    """See the module's docstring."""
    return asyncio.run(_measure(url, rate, seconds, connections, probe_every, tag))


def merge(results: list[Freshness]) -> Freshness:
    """Several runs as one: their probes, commands, seconds and statuses together."""
    merged = Freshness()
    for result in results:
        merged.seconds += result.seconds
        merged.commands += result.commands
        merged.probes_ms += result.probes_ms
        merged.statuses += result.statuses
    return merged
