"""PositionWatch without a database: one read per poll serves every waiter."""

import asyncio
import time
from uuid import UUID

import pytest

from cqrs_demo.ports import START, Position, ProjectionStop, Standing
from cqrs_demo.store.errors import StoreUnavailable
from cqrs_demo.store.position_watch import PositionWatch


class Checkpoints:
    """A checkpoint per projection that a test moves (or stops), counting the reads."""

    def __init__(self) -> None:
        self.positions: dict[str, Position] = {}
        self.stops: dict[str, ProjectionStop] = {}
        self.reads = 0
        self.failure: Exception | None = None

    async def read(self, projection: str) -> Standing:
        self.reads += 1
        if self.failure is not None:
            raise self.failure
        return Standing(self.positions.get(projection, START), self.stops.get(projection))


@pytest.mark.anyio
async def test_many_waiters_share_one_read_per_poll_and_wake_when_reached() -> None:
    checkpoints = Checkpoints()
    watch = PositionWatch(checkpoints.read)
    waits = [
        asyncio.create_task(watch.wait_for("orders", Position(5, n), wait_seconds=5))
        for n in range(100)
    ]
    await asyncio.sleep(0.2)
    assert checkpoints.reads < 25  # every 10 to 20 ms for all hundred, not per waiter
    checkpoints.positions["orders"] = Position(6, 1)
    assert await asyncio.gather(*waits) == [Standing(Position(6, 1))] * 100
    await asyncio.sleep(0.05)
    reads = checkpoints.reads
    await asyncio.sleep(0.05)
    assert checkpoints.reads == reads  # no waiter, no poll


@pytest.mark.anyio
async def test_a_wait_that_runs_out_returns_the_last_position_found() -> None:
    checkpoints = Checkpoints()
    checkpoints.positions["orders"] = Position(4, 2)
    watch = PositionWatch(checkpoints.read)
    reached = await watch.wait_for("orders", Position(5, 1), wait_seconds=0.1)
    assert reached == Standing(Position(4, 2))


@pytest.mark.anyio
async def test_each_projection_is_waited_for_on_its_own() -> None:
    checkpoints = Checkpoints()
    checkpoints.positions["orders"] = Position(9, 9)
    watch = PositionWatch(checkpoints.read)
    orders = await watch.wait_for("orders", Position(9, 9), wait_seconds=1)
    summaries = await watch.wait_for("user_order_summaries", Position(9, 9), wait_seconds=0.05)
    assert (orders, summaries) == (Standing(Position(9, 9)), Standing(START))


@pytest.mark.anyio
async def test_a_failed_read_fails_every_waiter_and_the_next_wait_polls_again() -> None:
    checkpoints = Checkpoints()
    checkpoints.failure = StoreUnavailable("no database connection free after 3.00 sec")
    watch = PositionWatch(checkpoints.read)
    waits = [watch.wait_for("orders", Position(1, n), wait_seconds=5) for n in range(3)]
    outcomes = await asyncio.gather(*waits, return_exceptions=True)
    assert [type(outcome) for outcome in outcomes] == [StoreUnavailable] * 3
    checkpoints.failure = None
    checkpoints.positions["orders"] = Position(2, 1)
    reached = await watch.wait_for("orders", Position(1, 1), wait_seconds=1)
    assert reached == Standing(Position(2, 1))


@pytest.mark.anyio
async def test_a_stopped_projection_wakes_every_waiter_at_once_saying_where_it_stopped() -> None:
    checkpoints = Checkpoints()
    checkpoints.positions["orders"] = Position(3, 1)
    watch = PositionWatch(checkpoints.read)
    waits = [
        asyncio.create_task(watch.wait_for("orders", Position(5, n), wait_seconds=10))
        for n in range(3)
    ]
    await asyncio.sleep(0.05)
    assert not any(wait.done() for wait in waits)
    stop = ProjectionStop(UUID(int=7), "OrderCreated", "quantity: must be a whole number")
    checkpoints.stops["orders"] = stop
    started = time.monotonic()
    assert await asyncio.gather(*waits) == [Standing(Position(3, 1), stop)] * 3
    assert time.monotonic() - started < 0.5  # the next poll, not the 10 s wait
