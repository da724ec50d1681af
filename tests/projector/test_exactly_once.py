"""Every event applied exactly once: by batches, and across kill -9 under a stream of appends."""

import asyncio
import random
import time
from pathlib import Path

import pytest

from tests.projector.support import (
    Writers,
    audit,
    checkpoints,
    running_projector,
    wait_until_caught_up,
)

pytestmark = pytest.mark.anyio


async def test_batches_leave_what_a_recomputation_from_the_events_gives(
    fresh_database_url: str, tmp_path: Path
) -> None:
    async with Writers(fresh_database_url) as writers:
        await writers.write(300)
    with running_projector(fresh_database_url, tmp_path, CQRS_PROJECTOR_BATCH_SIZE="7"):
        wait_until_caught_up(fresh_database_url)
        async with Writers(fresh_database_url) as writers:
            writers.open = []
            await writers.write(100)
        wait_until_caught_up(fresh_database_url)
    assert audit(fresh_database_url) > 250
    assert {state for *_, state in checkpoints(fresh_database_url).values()} == {"running"}


async def test_kill_9_mid_run_under_appends_applies_every_event_once(
    fresh_database_url: str, tmp_path: Path
) -> None:
    chance = random.Random(7)
    async with Writers(fresh_database_url) as writers:
        await writers.write(2000, concurrency=16)  # a backlog, so kills land mid-batch
        appending = asyncio.create_task(writers.write(6000, concurrency=4))
        kills = 0
        started = time.monotonic()
        while kills < 5 and time.monotonic() - started < 30:
            with running_projector(
                fresh_database_url, tmp_path, CQRS_PROJECTOR_BATCH_SIZE="50"
            ) as projector:
                projector.wait_until_holding()
                await asyncio.sleep(chance.uniform(0.2, 1.5))
                projector.kill()
                kills += 1
        appending.cancel()
        await asyncio.gather(appending, return_exceptions=True)
    assert kills == 5
    applied_before = checkpoints(fresh_database_url)
    with running_projector(fresh_database_url, tmp_path):
        wait_until_caught_up(fresh_database_url, timeout=60)
    assert audit(fresh_database_url) > 1400
    for _, applied, total, state in checkpoints(fresh_database_url).values():
        assert (applied, state) == (total, "running")
    # the kills did land while there was work left
    assert any(applied < total for _, applied, total, _ in applied_before.values())
