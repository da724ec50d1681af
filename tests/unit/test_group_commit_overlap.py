"""Group commit's timing rules: a lone command is written at once by its caller; a second
batch goes out while one is being written only once that one has been out for
``overlap_after`` seconds."""

import asyncio
import time
from collections.abc import Callable, Sequence

import pytest

from cqrs_demo.store.group_commit import GroupCommit

pytestmark = pytest.mark.anyio


class HeldWrites:
    """A ``write`` that records each batch and returns only when released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.started: list[float] = []  # when each batch went out (monotonic seconds)
        self.release = asyncio.Event()

    async def __call__(self, batch: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(batch))
        self.started.append(time.monotonic())
        await self.release.wait()
        return [command * 10 for command in batch]


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Until ``condition()`` holds, checked at every turn of the loop (at most ``timeout``
    seconds, then AssertionError naming ``what``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.005)


async def test_a_further_batch_waits_for_overlap_after_then_overlaps() -> None:
    writes = HeldWrites()
    group = GroupCommit(writes, max_batch=64, max_in_flight=2, overlap_after=0.3)
    first = asyncio.create_task(group.submit(1))
    await until(lambda: writes.batches == [[1]], "the first batch")
    queued = [asyncio.create_task(group.submit(n)) for n in (2, 3)]
    # The first batch is still held: the second must go out anyway, not before 0.3 s.
    await until(lambda: len(writes.batches) == 2, "a held batch held up the commands behind it")
    assert writes.batches == [[1], [2, 3]]
    # (0.29: less a margin for the two clock reads around the timer)
    assert writes.started[1] - writes.started[0] >= 0.29, "went out before overlap_after"
    writes.release.set()
    assert await asyncio.gather(first, *queued) == [10, 20, 30]


async def test_commands_queued_behind_a_quick_batch_go_out_together_when_it_returns() -> None:
    writes = HeldWrites()
    group = GroupCommit(writes, max_batch=64, max_in_flight=2, overlap_after=5.0)
    first = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0.01)
    queued = [asyncio.create_task(group.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0.05)
    writes.release.set()
    assert await asyncio.gather(first, *queued) == [10, 20, 30, 40]
    assert writes.batches == [[1], [2, 3, 4]]


async def test_a_lone_command_is_written_by_its_callers_own_task() -> None:
    """No writer task and no extra loop turn for a command that finds nothing in flight."""
    writers: list[asyncio.Task[object] | None] = []

    async def write(batch: Sequence[int]) -> list[int | Exception]:
        writers.append(asyncio.current_task())
        return list(batch)

    group = GroupCommit(write, max_batch=64, max_in_flight=2, overlap_after=0.0)
    caller = asyncio.create_task(group.submit(7))
    assert await caller == 7
    assert writers == [caller]
