"""The floor: what keeping the read models costs the create benchmark, with no projector code.

``cqrs-demo project`` reads each batch into Python, decodes and folds it, and sends the rows
back. This process does a batch of each projection as one SQL statement inside PostgreSQL
(``floor_projector.sql``): it reads the page after the projection's checkpoint from the feed,
writes the same rows as the projection would for new orders, and moves the checkpoint, in
one transaction that does not wait for its WAL flush (as the projector's do). Batches are as
large and as far apart as the projector's (``runner.batch_interval``, the default batch
size), so what it costs is what any projector of these read models costs at the least: the
feed read, the rows and their indexes, the WAL. With ``pass-over`` it writes no rows, only
the checkpoints: the cost of following the feed alone.

Run by ``tests/bench/run --projector floor`` (or ``floor-pass-over``) beside the service,
instead of ``cqrs-demo project``; for the create load only (new orders): it exits with a
message at the first batch holding any other event, and writes nothing of that batch. It
takes no lock: nothing else projects the benchmark's database.

    python -m tests.bench.floor_projector rows|pass-over   (CQRS_DATABASE_URL: the database)
"""

import asyncio
import sys
import time
from pathlib import Path

import psycopg

from cqrs_demo.projector.runner import BATCH_INTERVAL_SECONDS, batch_interval
from cqrs_demo.settings import load_settings

PROJECTIONS = ("orders", "user_order_summaries")
MODES = ("rows", "pass-over")
READY = "floor projector ready"
_PARTS = Path(__file__).with_name("floor_projector.sql")


def statement_parts() -> dict[str, str]:
    """The parts of ``floor_projector.sql``, by name (the text after ``-- part: NAME``)."""
    parts: dict[str, str] = {}
    name = None
    for line in _PARTS.read_text().splitlines(keepends=True):
        if line.startswith("-- part: "):
            name = line.removeprefix("-- part: ").strip()
            parts[name] = ""
        elif name is not None:
            parts[name] += line
    return parts


def statement(projection: str, mode: str) -> str:
    """One batch of ``projection`` as one statement: with its rows, or passing over them."""
    parts = statement_parts()
    rows = parts[projection] if mode == "rows" else ""
    return parts["page"] + rows + parts["result"]


class FloorError(Exception):
    """A batch the floor projector cannot apply (an event other than OrderCreated)."""


Position = tuple[str, int]


async def follow(url: str, projection: str, mode: str, start: Position, batch_size: int) -> None:
    """Keep ``projection`` up to the feed from ``start``, its batches paced as the
    projector's are."""
    sql = statement(projection, mode).encode()
    position = start
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(b"SET synchronous_commit = off")
        await conn.execute(b"SET plan_cache_mode = force_custom_plan")
        last_read = time.monotonic()
        busy_reads = 0
        while True:
            started = time.monotonic()
            cursor = await conn.execute(
                sql,
                {
                    "projection": projection,
                    "transaction_id": position[0],
                    "event_number": position[1],
                    "limit": batch_size,
                },
            )
            row = await cursor.fetchone()
            assert row is not None
            read, moved = int(row[0]), int(row[1])
            if read and not moved:
                raise FloorError(
                    f"{projection}: a batch after {position[0]}-{position[1]} holds an event"
                    " other than OrderCreated; the floor projector is for the create load only"
                )
            if moved:
                position = (str(row[2]), int(row[3]))
            full = read >= batch_size
            pause = 0.0 if full else batch_interval(read, started - last_read, busy_reads)
            if not read:
                pause = BATCH_INTERVAL_SECONDS  # no wake-ups here: it polls instead
            last_read = started
            busy_reads = busy_reads + 1 if full or pause > BATCH_INTERVAL_SECONDS else 0
            await asyncio.sleep(max(0.0, started + pause - time.monotonic()))


def checkpoints(url: str) -> dict[str, Position]:
    """Each projection's checkpoint, created at the start of the feed if it is not there."""
    found: dict[str, Position] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for projection in PROJECTIONS:
            conn.execute(
                b"INSERT INTO projection_checkpoints (projection) VALUES (%s)"
                b" ON CONFLICT (projection) DO NOTHING",
                (projection,),
            )
            row = conn.execute(
                b"SELECT transaction_id::text, event_number FROM projection_checkpoints"
                b" WHERE projection = %s",
                (projection,),
            ).fetchone()
            assert row is not None
            found[projection] = (str(row[0]), int(row[1]))
    return found


async def main(mode: str) -> None:
    settings = load_settings()
    starts = checkpoints(settings.conninfo)
    batch_size = settings.projector_batch_size
    print(f"{READY}: {mode}, batches of {batch_size:,}", flush=True)
    tasks = [
        asyncio.create_task(follow(settings.conninfo, name, mode, start, batch_size))
        for name, start in starts.items()
    ]
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        task.result()


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in MODES:
        sys.exit(f"usage: python -m tests.bench.floor_projector {'|'.join(MODES)}")
    try:
        asyncio.run(main(sys.argv[1]))
    except FloorError as error:
        sys.exit(f"floor projector: {error}")
