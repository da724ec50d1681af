"""Every event applied exactly once: by batches, and across kill -9 under a stream of appends."""

import asyncio
import random
import time
from pathlib import Path

import psycopg
import pytest

from tests.projector.support import (
    Writers,
    audit,
    checkpoints,
    insert_backlog,
    read_model_differences,
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


async def test_the_audit_names_each_row_a_read_model_has_wrong(
    fresh_database_url: str, tmp_path: Path
) -> None:
    async with Writers(fresh_database_url) as writers:
        await writers.write(60)
    with running_projector(fresh_database_url, tmp_path):
        wait_until_caught_up(fresh_database_url)
    assert read_model_differences(fresh_database_url) == []
    with psycopg.connect(fresh_database_url) as conn:
        conn.execute(
            "UPDATE orders SET quantity = quantity + 1"
            " WHERE order_id = (SELECT min(order_id) FROM orders)"
        )
        conn.execute(
            "DELETE FROM user_order_summaries"
            " WHERE user_id = (SELECT min(user_id) FROM user_order_summaries)"
        )
    sides = sorted(side for side, _ in read_model_differences(fresh_database_url))
    assert sides == [
        "orders, from the events only",
        "orders, in the read model only",
        "user_order_summaries, from the events only",
    ]


async def test_kill_9_mid_run_under_appends_applies_every_event_once(
    fresh_database_url: str, tmp_path: Path
) -> None:
    chance = random.Random(7)
    insert_backlog(fresh_database_url, 30_000)  # so that kills land mid-run
    behind_at_kills: list[list[int]] = []
    async with Writers(fresh_database_url) as writers:
        appending = asyncio.create_task(writers.write(100_000, concurrency=4))
        started = time.monotonic()
        while len(behind_at_kills) < 5 and time.monotonic() - started < 30:
            with running_projector(
                fresh_database_url, tmp_path, CQRS_PROJECTOR_BATCH_SIZE="50"
            ) as projector:
                projector.wait_until_holding()
                await asyncio.sleep(chance.uniform(0.2, 1.5))
                projector.kill()
                behind_at_kills.append(
                    [
                        total - applied
                        for _, applied, total, _ in checkpoints(fresh_database_url).values()
                    ]
                )
        appending.cancel()
        await asyncio.gather(appending, return_exceptions=True)
    assert len(behind_at_kills) == 5
    assert all(min(behind) > 0 for behind in behind_at_kills), behind_at_kills
    with running_projector(fresh_database_url, tmp_path):
        wait_until_caught_up(fresh_database_url, timeout=60)
    assert audit(fresh_database_url) > 30_000
    for _, applied, total, state in checkpoints(fresh_database_url).values():
        assert (applied, state) == (total, "running")
