"""Waiting for a projection to reach a position, without holding a connection.

A query that must reflect a client's own write (``min_position``) waits here. While any
query of a process waits for a projection, one task reads that projection's checkpoint
(one statement on a pooled connection, given back at once) and wakes every waiter whose
position it has reached, and every waiter if the projection is stopped (it will not move
until an operator acts: the query answers at once, saying so); between reads nothing is
held. So a hundred waiting queries cost what one does: one read per poll, and no pool slot
while they sleep.

Polls come every ``FIRST_POLL_SECONDS``, growing by ``POLL_BACKOFF`` up to
``LAST_POLL_SECONDS`` while the checkpoint stands still, and back to the first as soon as it
moves: a projector that keeps up is seen within ~10 ms, one that stands still costs 50 reads
a second while anyone waits for it.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cqrs_demo.ports import START, Position, Standing

FIRST_POLL_SECONDS = 0.010
LAST_POLL_SECONDS = 0.020
POLL_BACKOFF = 1.5


@dataclass(frozen=True, slots=True, eq=False)
class _Waiter:
    """One waiting query: the position it wants, and the future a poll resolves."""

    wanted: Position
    reached: "asyncio.Future[Standing]"


class PositionWatch:
    """The waiters of one process for the projections whose standing ``read`` returns (by
    projection name), and the polls that wake them."""

    def __init__(self, read: Callable[[str], Awaitable[Standing]]) -> None:
        self._read = read
        self._waiters: dict[str, list[_Waiter]] = {}
        self._polls: dict[str, asyncio.Task[None]] = {}
        self._latest: dict[str, Standing] = {}

    async def wait_for(self, projection: str, wanted: Position, *, wait_seconds: float) -> Standing:
        """Where the projection stands once a poll finds it at or past ``wanted``, or
        stopped; after ``wait_seconds``, what the last poll found instead (``START`` if none
        did). Raises what ``read`` raised (``StoreUnavailable``, ``StoreError``) to every
        waiter of the poll that failed."""
        waiter = _Waiter(wanted, asyncio.get_running_loop().create_future())
        waiters = self._waiters.setdefault(projection, [])
        waiters.append(waiter)
        if projection not in self._polls:
            self._polls[projection] = asyncio.create_task(self._poll(projection, waiters))
        try:
            return await asyncio.wait_for(waiter.reached, wait_seconds)
        except TimeoutError:
            return self._latest.get(projection, Standing(START))
        finally:
            if waiter in waiters:
                waiters.remove(waiter)

    async def _poll(self, projection: str, waiters: list[_Waiter]) -> None:
        """Read the checkpoint and wake the waiters it satisfies, until none is left."""
        pause = FIRST_POLL_SECONDS
        try:
            while waiters:
                try:
                    standing = await self._read(projection)
                except Exception as error:
                    _fail(waiters, error)
                    return
                if standing != self._latest.get(projection):
                    pause = FIRST_POLL_SECONDS
                self._latest[projection] = standing
                _wake(waiters, standing)
                if waiters:
                    await asyncio.sleep(pause)
                    pause = min(pause * POLL_BACKOFF, LAST_POLL_SECONDS)
        finally:
            # No await between the last look at ``waiters`` and here: a waiter that comes
            # later finds no poll and starts one.
            del self._polls[projection]
            if not waiters:
                del self._waiters[projection]


def _wake(waiters: list[_Waiter], standing: Standing) -> None:
    """Wake the waiters ``standing`` satisfies: all of them if the projection is stopped."""
    stopped = standing.stopped_at is not None
    for waiter in [waiter for waiter in waiters if stopped or waiter.wanted <= standing.position]:
        waiters.remove(waiter)
        if not waiter.reached.done():
            waiter.reached.set_result(standing)


def _fail(waiters: list[_Waiter], error: Exception) -> None:
    for waiter in waiters:
        if not waiter.reached.done():
            waiter.reached.set_exception(error)
    waiters.clear()
