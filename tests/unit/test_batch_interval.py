"""The projector reads batches that are not full 10 ms apart; 40 ms apart while the feed
brings 4,000 events/s or more (fewer batches, each costing the busy machine its CPU), and
150 ms apart once it has for five reads in a row (a burst alone never waits that long)."""

import pytest

from cqrs_demo.projector.runner import (
    BATCH_INTERVAL_SECONDS,
    BUSY_BATCH_INTERVAL_SECONDS,
    SUSTAINED_BATCH_INTERVAL_SECONDS,
    SUSTAINED_BUSY_READS,
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
        (100, 0.040, BATCH_INTERVAL_SECONDS),  # down to 2,500 events/s
    ],
)
def test_the_interval_follows_the_feeds_rate(
    events: int, since_last_read: float, interval: float
) -> None:
    assert batch_interval(events, since_last_read) == interval


@pytest.mark.parametrize(
    ("events", "since_last_read", "busy_reads", "interval"),
    [
        (300, 0.040, SUSTAINED_BUSY_READS - 1, BUSY_BATCH_INTERVAL_SECONDS),  # not yet
        (300, 0.040, SUSTAINED_BUSY_READS, SUSTAINED_BATCH_INTERVAL_SECONDS),
        (900, 0.150, SUSTAINED_BUSY_READS + 10, SUSTAINED_BATCH_INTERVAL_SECONDS),  # 6,000/s
        (500, 0.150, SUSTAINED_BUSY_READS + 10, BATCH_INTERVAL_SECONDS),  # down to 3,333/s
    ],
)
def test_the_longest_interval_waits_for_a_sustained_rate(
    events: int, since_last_read: float, busy_reads: int, interval: float
) -> None:
    assert batch_interval(events, since_last_read, busy_reads) == interval
