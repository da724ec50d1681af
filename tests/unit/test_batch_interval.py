"""The projector reads batches that are not full 10 ms apart, and 150 ms apart while the feed
brings 4,000 events/s or more (fewer batches, each costing the busy machine its CPU)."""

import pytest

from cqrs_demo.projector.runner import (
    BATCH_INTERVAL_SECONDS,
    BUSY_BATCH_INTERVAL_SECONDS,
    batch_interval,
)


@pytest.mark.parametrize(
    ("events", "since_last_read", "interval"),
    [
        (0, 0.010, BATCH_INTERVAL_SECONDS),  # nothing new
        (1, 5.0, BATCH_INTERVAL_SECONDS),  # the first after a quiet while
        (20, 0.010, BATCH_INTERVAL_SECONDS),  # 2,000 events/s
        (39, 0.010, BATCH_INTERVAL_SECONDS),  # just below 4,000 events/s
        (40, 0.010, BUSY_BATCH_INTERVAL_SECONDS),  # 4,000 events/s
        (75, 0.010, BUSY_BATCH_INTERVAL_SECONDS),  # 7,500 events/s
        (300, 0.040, BUSY_BATCH_INTERVAL_SECONDS),  # still 7,500 events/s, read 40 ms apart
        (1000, 0.150, BUSY_BATCH_INTERVAL_SECONDS),  # 6,667 events/s, read 150 ms apart
        (100, 0.040, BATCH_INTERVAL_SECONDS),  # down to 2,500 events/s
        (500, 0.150, BATCH_INTERVAL_SECONDS),  # down to 3,333 events/s
    ],
)
def test_the_interval_follows_the_feeds_rate(
    events: int, since_last_read: float, interval: float
) -> None:
    assert batch_interval(events, since_last_read) == interval
