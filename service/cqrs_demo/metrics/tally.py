"""What a worker counts while it serves, in plain Python: no lock, no I/O, no library.

A command costs about 40 µs of Python (``docs/performance.md``); a ``prometheus_client``
counter in multiprocess mode takes a lock and writes to a memory-mapped file on every
``inc``, several of them per request. So the request path only adds to the plain numbers
here, and ``export`` moves them into the library's values in bulk, once a second.

One ``Tally`` per process, ``TALLY``, like a logger: the access log, the command endpoint,
the event store and the pruning task add to it without being handed it. It counts only
while ``on`` (the worker turns it on when ``CQRS_METRICS_PORT`` is set); every caller
checks ``on`` first, so with metrics off the request path does no more than that test.
Single-threaded: everything runs on the worker's event loop.
"""

from bisect import bisect_left
from dataclasses import dataclass, field

# Upper bounds of the latency histogram's buckets, in seconds (the last bucket, +Inf, is
# implied): a command takes 1 to 5 ms at 32 connections, a long poll of the feed up to 30 s.
SECONDS_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Upper bounds of the group-commit batch-size histogram's buckets (commands per statement).
BATCH_BOUNDS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0)


@dataclass(slots=True)
class Histogram:
    """Observations counted per bucket (``buckets[i]``: at most ``bounds[i]`` and more than
    ``bounds[i-1]``; the last one: more than every bound), and their sum."""

    buckets: list[int]
    total: float = 0.0

    @classmethod
    def empty(cls, bounds: tuple[float, ...]) -> "Histogram":
        return cls([0] * (len(bounds) + 1))

    def observe(self, value: float, bounds: tuple[float, ...]) -> None:
        self.buckets[bisect_left(bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.buckets)


@dataclass(slots=True)
class Counts:
    """What was counted since the last ``Tally.take``. ``requests`` by (route template,
    status); ``refused`` commands by reason; ``batches``: commands per statement written."""

    requests: dict[tuple[str, int], Histogram] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    events_appended: int = 0
    batches: Histogram = field(default_factory=lambda: Histogram.empty(BATCH_BOUNDS))
    keys_pruned: int = 0

    def __bool__(self) -> bool:
        return bool(self.requests or self.refused or self.batches.total or self.keys_pruned)


class Tally:
    """The process's counts since they were last taken. Every method is a few dictionary
    and list operations; callers test ``on`` before calling."""

    def __init__(self) -> None:
        self.on = False
        self._counts = Counts()

    def request(self, route: str, status: int, seconds: float) -> None:
        """One request answered: its route's template (never the raw path), status, time."""
        requests = self._counts.requests
        histogram = requests.get((route, status))
        if histogram is None:
            histogram = requests[route, status] = Histogram.empty(SECONDS_BOUNDS)
        histogram.observe(seconds, SECONDS_BOUNDS)

    def refused(self, reason: str) -> None:
        """One command refused, for ``reason`` (see ``api.commands.refusal_reason``)."""
        refused = self._counts.refused
        refused[reason] = refused.get(reason, 0) + 1

    def written(self, commands: int, events: int) -> None:
        """One statement of the event store written: ``commands`` in it, ``events`` new."""
        self._counts.batches.observe(commands, BATCH_BOUNDS)
        self._counts.events_appended += events

    def pruned(self, keys: int) -> None:
        """Expired idempotency keys removed."""
        self._counts.keys_pruned += keys

    def take(self) -> Counts:
        """The counts so far; counting starts again from zero."""
        counts, self._counts = self._counts, Counts()
        return counts


TALLY = Tally()
