"""Warnings that come in bursts: the first of a kind in full, the rest counted in one line."""

import asyncio
import logging

import pytest

from cqrs_demo.logs import BurstLog

pytestmark = pytest.mark.anyio


async def test_a_burst_is_one_line_then_a_count_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.burst")
    burst = BurstLog(logger, window=0.05)
    with caplog.at_level(logging.WARNING, logger="test.burst"):
        for number in range(5):
            burst.hit("heads refused", f"431 to client {number}")
        burst.hit("idle closed", "closed an idle connection")
        assert [record.getMessage() for record in caplog.records] == [
            "431 to client 0",
            "closed an idle connection",
        ]
        await asyncio.sleep(0.2)
        burst.hit("heads refused", "431 to client 5")  # a new window: in full again
    assert [record.getMessage() for record in caplog.records] == [
        "431 to client 0",
        "closed an idle connection",
        "heads refused: 4 more in the last 0.05 s",
        "431 to client 5",
    ]
