"""What the projector tests share: a ``cqrs-demo project`` process, writers, and the audit
that recomputes both read models from ``events`` with SQL and compares them row by row, and
the rebuild command."""

import asyncio
import itertools
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

from cqrs_demo.domain.errors import ExpectedVersionMismatch
from cqrs_demo.domain.ids import uuid7
from cqrs_demo.domain.orders import OrderCancelled, OrderCreated
from cqrs_demo.store.events import PostgresEventStore
from cqrs_demo.store.pool import Database
from tests.support import CQRS_DEMO, wait_for_match

_logs = itertools.count(1)


class ProjectorProcess:
    """A ``cqrs-demo project`` process, its log captured to a file."""

    def __init__(self, database_url: str, log_dir: Path, **settings: str) -> None:
        self.log_path = log_dir / f"projector-{next(_logs)}.log"
        environ = {
            **os.environ,
            "CQRS_DATABASE_URL": database_url,
            "CQRS_LOG_LEVEL": "info",
            "CQRS_PROJECTOR_POLL_SECONDS": "1",
            **settings,
        }
        with self.log_path.open("wb") as output:
            self.process = subprocess.Popen(
                [CQRS_DEMO, "project"], env=environ, stdout=output, stderr=subprocess.STDOUT
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 10) -> re.Match[str]:
        return wait_for_match(self.log, pattern, timeout=timeout)

    def wait_until_holding(self, timeout: float = 10) -> None:
        """Until this process holds both projections' locks."""
        for name in ("orders", "user_order_summaries"):
            self.wait_for_log(rf"projection {name}: took the lock", timeout)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


@contextmanager
def running_projector(
    database_url: str, log_dir: Path, **settings: str
) -> Iterator[ProjectorProcess]:
    projector = ProjectorProcess(database_url, log_dir, **settings)
    try:
        yield projector
    finally:
        projector.stop()


def checkpoints(database_url: str) -> dict[str, tuple[str, int, int, str]]:
    """Each projection's (position, events_applied, events in the table, state)."""
    with psycopg.connect(database_url) as conn:
        total = conn.execute("SELECT count(*) FROM events").fetchone()
        rows = conn.execute(
            "SELECT projection, transaction_id::text || '-' || event_number, events_applied,"
            " state FROM projection_checkpoints"
        ).fetchall()
    assert total is not None
    return {str(r[0]): (str(r[1]), int(r[2]), int(total[0]), str(r[3])) for r in rows}


def wait_until_caught_up(database_url: str, timeout: float = 20, skipped: int = 0) -> None:
    """Until both projections have applied every event in the table (but ``skipped``)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {
            name: checkpoint
            for name, checkpoint in checkpoints(database_url).items()
            if name in ("orders", "user_order_summaries")
        }
        if len(seen) == 2 and all(
            applied + skipped == total for _, applied, total, _ in seen.values()
        ):
            return
        if any(state == "stopped" for *_, state in seen.values()):
            raise AssertionError(f"a projection stopped: {seen}")
        if time.monotonic() > deadline:
            raise AssertionError(f"projections not caught up after {timeout} s: {seen}")
        time.sleep(0.05)


# The read models recomputed from every event at once, with SQL, but the verification
# streams' (domain.projections.VERIFICATION_PREFIX), which no projection shows. A price
# compares as text: exactly as sent, its scale too; a total by value (1.50 - 1.00 is 0.50
# one way, 0.5 the other).
EXPECTED_ORDERS = """
SELECT c.payload->>'order_id', c.payload->>'user_id', c.payload->>'product_id',
       (c.payload->>'quantity')::int, (c.payload->>'total_price')::numeric::text,
       CASE WHEN x.id IS NULL THEN 'placed' ELSE 'cancelled' END, c.occurred_on,
       x.occurred_on, x.payload->>'reason'
FROM events c
LEFT JOIN events x ON x.event_type = 'OrderCancelled'
                  AND x.payload->>'order_id' = c.payload->>'order_id'
WHERE c.event_type = 'OrderCreated' AND c.payload->>'user_id' NOT LIKE 'cqrs-verify:%'
"""
ACTUAL_ORDERS = """
SELECT order_id, user_id, product_id, quantity, total_price::text, status, placed_at,
       cancelled_at, reason
FROM orders
"""
EXPECTED_SUMMARIES = """
SELECT c.payload->>'user_id', count(*), count(x.id), count(*) - count(x.id),
       coalesce(sum((c.payload->>'total_price')::numeric) FILTER (WHERE x.id IS NULL), 0),
       max(c.occurred_on)
FROM events c
LEFT JOIN events x ON x.event_type = 'OrderCancelled'
                  AND x.payload->>'order_id' = c.payload->>'order_id'
WHERE c.event_type = 'OrderCreated' AND c.payload->>'user_id' NOT LIKE 'cqrs-verify:%'
GROUP BY 1
"""
ACTUAL_SUMMARIES = """
SELECT user_id, orders_placed, orders_cancelled, open_orders, open_total, last_order_at
FROM user_order_summaries
"""


# Each row found on one side only, named by table and side: nothing when both read models
# are what the events give. One statement, so that a host's psql can run it too
# (tests/deploy/test_cluster.py).
READ_MODEL_DIFFERENCES = f"""
SELECT 'orders, from the events only', e::text
FROM ({EXPECTED_ORDERS} EXCEPT ALL {ACTUAL_ORDERS}) e
UNION ALL
SELECT 'orders, in the read model only', a::text
FROM ({ACTUAL_ORDERS} EXCEPT ALL {EXPECTED_ORDERS}) a
UNION ALL
SELECT 'user_order_summaries, from the events only', e::text
FROM ({EXPECTED_SUMMARIES} EXCEPT ALL {ACTUAL_SUMMARIES}) e
UNION ALL
SELECT 'user_order_summaries, in the read model only', a::text
FROM ({ACTUAL_SUMMARIES} EXCEPT ALL {EXPECTED_SUMMARIES}) a
"""


def read_model_differences(database_url: str) -> list[tuple[str, str]]:
    """``READ_MODEL_DIFFERENCES``' rows: (table and side, the row as text)."""
    with psycopg.connect(database_url) as conn:
        return [(str(side), str(row)) for side, row in conn.execute(READ_MODEL_DIFFERENCES)]


def audit(database_url: str) -> int:
    """Compare both read models with their recomputation from the events, row by row; the
    number of orders."""
    differences = read_model_differences(database_url)
    assert differences == [], f"{len(differences)} rows differ: {differences[:10]}"
    with psycopg.connect(database_url) as conn:
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()
    assert orders is not None
    return int(orders[0])


class Writers:
    """Appends through the event store's write paths: orders of a few users, some of them
    cancelled, with prices of varied scale."""

    def __init__(self, database_url: str) -> None:
        self.database = Database(database_url, min_size=1, max_size=4, timeout=10)
        self.store = PostgresEventStore(
            self.database, idempotency_retention=timedelta(hours=1), max_batch=64, max_in_flight=2
        )
        self.open: list[OrderCreated] = []
        self.random = random.Random(12)

    async def __aenter__(self) -> "Writers":
        await self.database.open(wait_seconds=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.database.close()

    async def write(self, count: int, *, concurrency: int = 8) -> None:
        """``count`` commands, ``concurrency`` at a time (so some share a transaction)."""
        for start in range(0, count, concurrency):
            batch = range(start, min(count, start + concurrency))
            await asyncio.gather(*(self.one() for _ in batch))

    async def one(self) -> None:
        if self.open and self.random.random() < 0.3:
            placed = self.open.pop(self.random.randrange(len(self.open)))
            cancel = OrderCancelled(
                uuid7(), placed.order_id, placed.user_id, "test", datetime.now(UTC)
            )
            await self._append(placed.user_id, cancel)
            return
        user = f"user-{self.random.randrange(20)}"
        price = Decimal(self.random.randrange(1, 10**6)).scaleb(-self.random.choice([0, 2, 3]))
        created = OrderCreated(
            uuid7(),
            str(uuid7()),
            user,
            "prod",
            self.random.randrange(1, 9),
            price,
            occurred_on=datetime.now(UTC),
        )
        await self._append(user, created)
        self.open.append(created)

    async def _append(self, stream: str, event: OrderCreated | OrderCancelled) -> None:
        """Append after the stream's head; a concurrent append to it took that version
        first: try again (as the service's handlers do)."""
        while True:
            try:
                await self.store.append_events(stream, [event], expected_version=None, metadata={})
            except ExpectedVersionMismatch:
                continue
            return


def insert_backlog(database_url: str, count: int) -> None:
    """``count`` orders of 500 users, written straight into the table in one transaction."""
    with psycopg.connect(database_url) as conn:
        conn.execute(BACKLOG, [count])


BACKLOG = """
INSERT INTO events (aggregate_id, event_type, payload, version)
SELECT 'backlog-' || (i %% 500), 'OrderCreated',
       jsonb_build_object('event_type', 'OrderCreated', 'order_id', 'backlog-order-' || i,
                          'user_id', 'backlog-' || (i %% 500), 'product_id', 'p',
                          'quantity', 1 + i %% 5, 'total_price', (i %% 1000) / 100.0),
       i / 500 + 1
FROM generate_series(0, %s - 1) AS i
"""


def rebuild(database_url: str, *options: str) -> subprocess.Popen[str]:
    """The rebuild command, with SIGINT's default action whatever this process inherited: a
    suite started in the background by a shell without job control ignores SIGINT, and so
    would the command (Python keeps an ignored SIGINT ignored), never interrupted by it."""
    return subprocess.Popen(
        [CQRS_DEMO, "projections", "rebuild", *options],
        env={**os.environ, "CQRS_DATABASE_URL": database_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_progress(database_url: str, name: str, beyond: int) -> None:
    """Until rebuild ``name``'s checkpoint has applied more than ``beyond`` events (a
    rebuild is interrupted mid-way, however fast it runs: a fixed sleep let a faster one
    finish first)."""
    deadline = time.monotonic() + 60
    while (found := checkpoints(database_url).get(name)) is None or found[1] <= beyond:
        assert time.monotonic() < deadline, f"{name} did not pass {beyond} events in 60 s"
        time.sleep(0.01)


def finished(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err
