"""``--cancel``: what cancelling an order costs as the user's stream grows.

Cancel reads the user's whole stream, folds it, decides, and appends ``OrderCancelled`` at
the version read; so every measured request must be a cancel that succeeds (a second
cancel of one order is a 409, the refusal path) against a stream of a known length.

For a stream length N, users are inserted directly with SQL (not through the API: it is
faster), each with N ``OrderCreated`` events of the shape the service writes (payload and
metadata keys as ``OrderCreated.payload()`` and ``handlers.append.envelope`` write them;
UUIDv4 order and event ids where the service uses UUIDv7). The first k = max(1, N // 10)
orders of each user are the targets, so a user receives k cancels and its stream holds
N..N+k-1 events before each of them. The targets are walked in rounds (the first target
of every user, then the second, ...), each wrk thread with users of its own, so that two
cancels of one user are never in flight together (no retried conflict is measured). Each
run takes targets nobody sent before; before a run, more users are inserted if fewer than
2.5 times the run's expected requests are left (the first run's expectation is a guess,
later ones the fastest rate seen at that length and level). The audit after each run
checks that every row of the run is an ``OrderCancelled`` of a target sent in it, at a
stream length in N..N+k-1, that each 202 is stored once at its version, and that nothing
but 202s came back.
"""

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.audit import Write, audit_writes
from tests.bench.audit import Audit
from tests.bench.load import LoadResult, wrk_threads
from tests.bench.postgres import Database
from tests.bench.runs import Workload, new_nonce

LUA = Path(__file__).with_name("cancel_order.lua")
FIRST_GUESS_RPS = 4000.0  # requests/s expected of a run before any was measured
# Targets prepared per expected request: on a shared machine two runs of one length and
# level differ by up to 2.2x (and a warm-up can be the slow one), and a run that runs out
# fails (its requests past the end are 409s).
MARGIN = 2.5
USERS_PER_CONNECTION = 4  # at least this many users per connection in each insert

# N OrderCreated events for each of %(users)s new users. Volatile values are drawn in the
# inner query, once per row.
_INSERT = b"""
INSERT INTO events (aggregate_id, event_type, payload, occurred_on, version, event_id, metadata)
SELECT r.user_id, 'OrderCreated',
       jsonb_build_object(
           'event_type', 'OrderCreated', 'order_id', r.order_id, 'user_id', r.user_id,
           'product_id', 'prod_456', 'quantity', 2, 'total_price', 150.0,
           'occurred_on', to_char(r.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US+00:00')),
       r.at, r.version, r.event_id,
       jsonb_build_object('command_id', r.command_id, 'correlation_id', r.command_id)
FROM (SELECT 'u-' || substr(md5(%(batch)s || n::text), 1, 8) || '-' || %(batch)s || '-' || n
                 AS user_id,
             v.version, clock_timestamp() AS at, gen_random_uuid() AS event_id,
             gen_random_uuid()::text AS order_id, gen_random_uuid()::text AS command_id
      FROM generate_series(1, %(users)s) AS n, generate_series(1, %(length)s) AS v (version)
      ORDER BY n, v.version) AS r
"""
_TARGETS = b"""
SELECT aggregate_id, payload->>'order_id' FROM events
WHERE id > %(high_water)s AND version <= %(per_stream)s
ORDER BY version, aggregate_id
"""
_RUN_ROWS = b"""
SELECT aggregate_id, version, event_type, payload->>'order_id' FROM events WHERE id > %s
"""


def cancels_per_stream(length: int) -> int:
    """How many cancels a user of ``length`` events receives: one per ten events."""
    return max(1, length // 10)


@dataclass
class CancelTargets:
    """Open orders of users with ``length`` events, per wrk thread, in the order to send."""

    database: Database
    length: int
    connections: int
    workdir: Path
    targets: list[list[tuple[str, str]]] = field(default_factory=list)
    fastest_rps: float = 0.0
    inserted_rows: int = 0
    insert_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.targets = [[] for _ in range(wrk_threads(self.connections))]

    @property
    def per_stream(self) -> int:
        return cancels_per_stream(self.length)

    def prepare(self, seconds: float) -> str | None:
        """Insert users until each thread has MARGIN times the requests expected in
        ``seconds``; returns what was done, ``None`` when nothing was needed."""
        rate = self.fastest_rps or FIRST_GUESS_RPS
        needed = math.ceil(rate * seconds * MARGIN / len(self.targets)) + 100
        missing = needed - min(len(mine) for mine in self.targets)
        if missing <= 0:
            return None
        per_thread = max(
            math.ceil(missing / self.per_stream),
            USERS_PER_CONNECTION * math.ceil(self.connections / len(self.targets)),
        )
        users = per_thread * len(self.targets)
        started = time.monotonic()
        self._insert(users)
        spent = time.monotonic() - started
        self.insert_seconds += spent
        return (
            f"prepared {users:,} users x {self.length} events ({users * self.length:,} rows, "
            f"{self.per_stream} cancel(s) each) for {self.connections} connection(s) "
            f"in {spent:.1f} s (SQL INSERT, then ANALYZE and CHECKPOINT)"
        )

    def _insert(self, users: int) -> None:
        high_water = self.database.high_water_id()
        batch = new_nonce()
        params = {"batch": batch, "users": users, "length": self.length}
        self.database.conn.execute(_INSERT, params)
        self.database.conn.execute(b"ANALYZE events")
        self.database.conn.execute(b"CHECKPOINT")
        rows = self.database.conn.execute(
            _TARGETS, {"high_water": high_water, "per_stream": self.per_stream}
        ).fetchall()
        threads = len(self.targets)
        # Rows come round by round (version), users in one order: user i goes to thread i % T.
        for index, (user, order) in enumerate(rows):
            self.targets[(index % users) % threads].append((str(user), str(order)))
        self.inserted_rows += users * self.length
        self.database.preloaded_rows += users * self.length

    def workload(self) -> Workload:
        """The next run: the targets left, written for cancel_order.lua."""
        prefix = self.workdir / f"targets-{new_nonce()}"
        for thread, mine in enumerate(self.targets):
            lines = "".join(f"{user} {order}\n" for user, order in mine)
            Path(f"{prefix}.{thread}").write_text(lines)
        return Workload(LUA, (str(prefix),), self.audit)

    def consume(self, load: LoadResult) -> None:
        """Drop the targets the run sent (answered or not), note its rate."""
        for thread, mine in enumerate(self.targets):
            del mine[: load.sent.get(thread, 0)]
        self.fastest_rps = max(self.fastest_rps, load.rps)

    def audit(self, nonce: str, load: LoadResult, database: Database, high_water: int) -> Audit:
        """See the module's docstring; the detail states the stream lengths found."""
        rows = database.conn.execute(_RUN_ROWS, [high_water]).fetchall()
        audit = Audit(rows=len(rows), acked=len(load.acks))
        audit.problems.extend(_answers(load, self.targets))
        sent = {
            order
            for thread, mine in enumerate(self.targets)
            for _, order in mine[: load.sent.get(thread, 0)]
        }
        low, high = self.length, self.length + self.per_stream - 1
        before = [int(version) - 1 for _, version, _, _ in rows]
        for stream, version, event_type, order in rows:
            if event_type != "OrderCancelled" or order not in sent:
                audit.problems.append(f"{event_type} {order} of {stream} was not sent in this run")
            if not low <= int(version) - 1 <= high:
                audit.problems.append(
                    f"{stream} cancelled at {version - 1} events, not {low}..{high}"
                )
        checked = audit_writes(
            [
                (
                    f"{ack.aggregate_id}@{ack.version}",
                    Write(str(ack.aggregate_id), ack.version or 0),
                )
                for ack in load.acks
            ],
            [
                (f"{stream}@{version}", Write(str(stream), int(version)))
                for stream, version, _, _ in rows
            ],
            unanswered=load.connections,
        )
        audit.problems.extend(checked.problems)
        audit.in_flight = checked.unacknowledged
        audit.events_read = statistics.fmean(before) if before else None
        audit.detail = (
            f"{len(rows)} OrderCancelled rows = {len(load.acks)} 202s + {audit.in_flight} in "
            f"flight at the end; stream length before each cancel "
            f"{min(before, default=0)}..{max(before, default=0)} (prepared {low}..{high})"
        )
        return audit


def _answers(load: LoadResult, targets: list[list[tuple[str, str]]]) -> list[str]:
    """What was wrong with the answers: anything but a 202, or targets run out."""
    problems = []
    if load.statuses:
        answers = ", ".join(
            f"{count} x {status}" for status, count in sorted(load.statuses.items())
        )
        problems.append(f"answers other than 202: {answers}")
    if load.socket_errors:
        problems.append(f"socket errors: {load.socket_errors}")
    for thread, count in load.sent.items():
        if count > len(targets[thread]):
            problems.append(f"thread {thread} sent {count:,}, {len(targets[thread]):,} prepared")
    return problems
