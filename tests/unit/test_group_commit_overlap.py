"""Group commit's timing rules: a lone command is written at once by its caller; a second
batch goes out while one is being written only once that one has been out for
``overlap_after`` seconds."""

import asyncio
from collections.abc import Sequence

import pytest

from cqrs_demo.store.group_commit import GroupCommit

pytestmark = pytest.mark.anyio


class HeldWrites:
    """A ``write`` that records each batch and returns only when released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()

    async def __call__(self, batch: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(batch))
        await self.release.wait()
        return [command * 10 for command in batch]


async def test_a_further_batch_waits_for_overlap_after_then_overlaps() -> None:
    writes = HeldWrites()
    group = GroupCommit(writes, max_batch=64, max_in_flight=2, overlap_after=0.3)
    first = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0.01)
    queued = [asyncio.create_task(group.submit(n)) for n in (2, 3)]
    await asyncio.sleep(0.1)
    assert writes.batches == [[1]], "the second batch went out before overlap_after"
    await asyncio.sleep(0.4)
    assert writes.batches == [[1], [2, 3]], "a held batch held up the commands behind it"
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
