"""One projection kept up to date: the loop around its pure function.

While this process holds the projection's lock, the loop reads the feed after the
checkpoint in batches, decodes each event, folds the batch with the projection's function
over the rows it needs, and commits the changed rows with the new checkpoint in one
transaction. An event it cannot apply stops the projection there (the events before it in
the batch are committed), for an operator (``cqrs-demo projections skip``); nothing is
skipped silently. A projection found stopped when its lock is taken (a restart, perhaps
with a release that reads the event) tries that event again, once. With nothing to read,
the loop waits for a wake-up, or ``poll_seconds`` at most.

Batches that are not full start ``BATCH_INTERVAL_SECONDS`` apart at least: every appending
transaction wakes the projector, and a batch per wake-up (a feed read, the rows' loads and a
transaction, per projection) cost more round trips than the commands themselves, and
slowed lone commands down (``docs/performance.md``, "Create with the projector running").
While the feed brings ``BUSY_EVENTS_PER_SECOND`` or more, they start
``BUSY_BATCH_INTERVAL_SECONDS`` apart, and ``SUSTAINED_BATCH_INTERVAL_SECONDS`` once it has
for ``SUSTAINED_BUSY_READS`` reads in a row: a batch costs about as much CPU as a few
hundred events besides its events' own, and on a busy machine that CPU is the commands'.
(Not at once: a burst after a stall would make a slower stream wait 150 ms.) Below that rate
(most of the time) a command is visible sooner. A full batch (a backlog) is followed by the
next at once. A projection reading on a busy timer, or through a backlog, wants no wake-ups
meanwhile (``wakeups``: the listener stops listening while every projection is busy). Nor
does one whose last ``TIMED_READS`` reads all found events, at any rate: it reads on the
timer, and each read finds what the wake-ups would have announced.
"""

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from cqrs_demo.domain.orders import OrderEvent
from cqrs_demo.domain.projections import (
    BatchKeys,
    Projection,
    batch_keys,
    fold_until,
    load_every_row,
)
from cqrs_demo.ports import (
    Checkpoint,
    ProjectionLock,
    ProjectionLocks,
    ProjectionStop,
    ReadModels,
    RowsExist,
)
from cqrs_demo.projector.feed import DecodedPage, SharedFeed
from cqrs_demo.projector.wakeups import Wakeup

log = logging.getLogger("cqrs_demo.projector")

BATCH_INTERVAL_SECONDS = 0.010
BUSY_EVENTS_PER_SECOND = 4_000
BUSY_BATCH_INTERVAL_SECONDS = 0.040
SUSTAINED_BUSY_READS = 5
SUSTAINED_BATCH_INTERVAL_SECONDS = 0.150
# Reads in a row that found events, after which a projection needs no wake-ups: at one
# client's 1,400 commands/s, a notification per command cost the machine about a fifth of
# its CPU per command (docs/performance.md, "Wake-ups while reading on the timer, and one
# connection").
TIMED_READS = 3
RETRY_FIRST_SECONDS = 0.5
# At most this long between two tries while the database is lost: after a failover the
# projector is back within a second of the new primary (with a cap of 10 s, the pause had
# grown to 4 or 8 s over a 15 s election, and the read models stood still that long after
# the commands were taken again). A try costs one connection attempt.
RETRY_MAX_SECONDS = 1.0
# The cycle collector's thresholds in a projecting process (Python's defaults: 700, 10, 10).
COLLECTOR_THRESHOLDS = (50_000, 20, 100)


def collect_less() -> None:
    """Run Python's cycle collector less often in this process. A batch allocates about ten
    objects per event, nearly none in a cycle (reference counting frees them), and at the
    defaults the collector ran some 3,000 times per 200,000 events, a full pass over every
    live object 24 times: a quarter of a rebuild's CPU. Process-wide: for the processes
    that project (``cqrs-demo project``, ``cqrs-demo projections rebuild``)."""
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


@dataclass(frozen=True, slots=True)
class Parts:
    """What a projection's loop needs: the feed, the read models, the locks, and how long
    to wait for a wake-up at most."""

    feed: SharedFeed
    read_models: ReadModels
    locks: ProjectionLocks
    poll_seconds: float


async def run_projection(
    projection: Projection,
    parts: Parts,
    wakeup: Wakeup,
    outlived: tuple[type[Exception], ...],
) -> NoReturn:
    """Be ``projection``'s projector, for as long as the process runs: wait for its lock,
    keep it up to date while the lock is held, and start over when the lock or the database
    is lost (errors of the types ``outlived``: a warning, then a pause of 0.5 s, then of
    1 s, each try after the first logged at debug level only). Runs until cancelled."""
    pause = RETRY_FIRST_SECONDS
    while True:
        try:
            async with parts.locks.hold(projection.name) as lock:
                log.info("projection %s: took the lock, this process projects it", projection.name)
                pause = RETRY_FIRST_SECONDS
                await _while_held(projection, parts, wakeup, lock)
            log.warning("projection %s: lost the lock; waiting to take it again", projection.name)
            wakeup.busy(False)
        except outlived as error:
            log.log(
                logging.WARNING if pause == RETRY_FIRST_SECONDS else logging.DEBUG,
                "projection %s: %s; trying again in %.1f s, then every %.0f s",
                projection.name,
                error,
                pause,
                RETRY_MAX_SECONDS,
            )
            wakeup.busy(False)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_SECONDS)


async def _while_held(
    projection: Projection, parts: Parts, wakeup: Wakeup, lock: ProjectionLock
) -> None:
    """Apply batches until the lock is found lost (checked at most every ``poll_seconds``)."""
    checkpoint: Checkpoint | None = None
    caught_up = False
    first = True
    checked = time.monotonic()
    next_read = checked  # when the next batch may be read (batch_interval)
    last_read = checked - parts.poll_seconds
    busy_reads = 0  # reads in a row that found the feed busy, or a full batch
    found_reads = 0  # reads in a row that found events
    while True:
        if time.monotonic() - checked >= parts.poll_seconds:
            if not await lock.still_held():
                return
            checked = time.monotonic()
        if checkpoint is None:
            checkpoint = await parts.read_models.checkpoint(projection.name)
            if first and checkpoint.state == "stopped":
                checkpoint = await _retry(projection, parts.read_models, checkpoint)
            first = False
        if checkpoint.state != "running":
            await wakeup.wait(parts.poll_seconds)
            checkpoint, caught_up = None, False  # an operator may have skipped the event
            continue
        if (pause := next_read - time.monotonic()) > 0:
            await asyncio.sleep(pause)
        started = time.monotonic()
        page = await parts.feed.page_after(checkpoint.position)
        full = len(page.events) >= parts.feed.batch_size
        pause = 0.0 if full else batch_interval(len(page.events), started - last_read, busy_reads)
        next_read, last_read = started + pause, started
        busy_reads = busy_reads + 1 if full or pause > BATCH_INTERVAL_SECONDS else 0
        found_reads = found_reads + 1 if page.events else 0
        wakeup.busy(busy_reads > 0 or found_reads >= TIMED_READS)
        if not page.events:
            if not caught_up:
                log.info(
                    "projection %s: caught up at %s, %d events applied",
                    projection.name,
                    checkpoint.position,
                    checkpoint.events_applied,
                )
                caught_up = True
            await wakeup.wait(parts.poll_seconds)
            continue
        checkpoint = await _apply(projection, parts.read_models, checkpoint, page)


def batch_interval(events: int, since_last_read: float, busy_reads: int = 0) -> float:
    """How long after a batch that was not full the next may be read: the batch held
    ``events``, read ``since_last_read`` seconds after the one before, which was the last of
    ``busy_reads`` busy reads (or full batches) in a row. See the module."""
    if events < BUSY_EVENTS_PER_SECOND * since_last_read:
        return BATCH_INTERVAL_SECONDS
    if busy_reads >= SUSTAINED_BUSY_READS:
        return SUSTAINED_BATCH_INTERVAL_SECONDS
    return BUSY_BATCH_INTERVAL_SECONDS


async def _apply(
    projection: Projection,
    read_models: ReadModels,
    checkpoint: Checkpoint,
    page: DecodedPage,
) -> Checkpoint | None:
    """``apply_page`` for the projection's own checkpoint, logged."""
    after = await apply_page(projection, read_models, projection.name, checkpoint, page)
    if after is None:
        log.warning(
            "projection %s: its checkpoint moved under it; reading it again", projection.name
        )
    elif after.state == "stopped":
        _report_stop(projection, after)
    return after


async def apply_page(
    projection: Projection,
    read_models: ReadModels,
    checkpoint_name: str,
    checkpoint: Checkpoint,
    page: DecodedPage,
) -> Checkpoint | None:
    """Apply ``page`` (the events after ``checkpoint``, the checkpoint ``checkpoint_name``)
    in one transaction, up to the first event that cannot be applied, where the checkpoint
    stops. The checkpoint after it, or ``None`` when it moved meanwhile (nothing was
    written: read it again). The rows a new order creates are not loaded
    (``projections.batch_keys``); if one was there, the store refuses the batch and it is
    applied again with every row loaded, so the projection stops at the event that found
    it, as it would have."""
    try:
        return await _fold_and_commit(
            projection, read_models, checkpoint_name, checkpoint, page, batch_keys
        )
    except RowsExist as error:
        log.info(
            "projection %s: %s; applying the batch again, every row loaded", checkpoint_name, error
        )
        return await _fold_and_commit(
            projection, read_models, checkpoint_name, checkpoint, page, load_every_row
        )


async def _fold_and_commit(
    projection: Projection,
    read_models: ReadModels,
    checkpoint_name: str,
    checkpoint: Checkpoint,
    page: DecodedPage,
    keys_of: Callable[[Projection, Sequence[OrderEvent]], BatchKeys],
) -> Checkpoint | None:
    """``apply_page``'s work, with the rows named by ``keys_of``: loaded, or taken to be
    absent. Raises ``RowsExist`` when a row taken to be absent was there."""
    batch, decoded, stop = page.events, page.decoded, page.unreadable
    keys = keys_of(projection, decoded)
    rows = await read_models.load_rows(keys.load)
    rows.update(dict.fromkeys(keys.assumed_absent))
    changed, failure = fold_until(projection, rows, decoded)
    applied = len(decoded) if failure is None else failure[0]
    if failure is not None:
        failed = batch[applied].event
        stop = ProjectionStop(failed.event_id, failed.event_type, _reason(failure[1]))
    to = batch[applied - 1].position if applied else checkpoint.position
    existing = {key for key, row in rows.items() if row is not None}
    committed = await read_models.commit(
        checkpoint_name,
        after=checkpoint,
        rows=changed,
        existing=existing,
        to=to,
        applied=applied,
        stop=stop,
    )
    if not committed:
        return None
    total = checkpoint.events_applied + applied
    if stop is None:
        return Checkpoint(to, total, checkpoint.state, generation=checkpoint.generation)
    return Checkpoint(
        to, total, "stopped", stop.error, stop.event_id, stop.event_type, checkpoint.generation
    )


def _reason(error: Exception) -> str:
    return str(error) or type(error).__name__


async def _retry(
    projection: Projection, read_models: ReadModels, checkpoint: Checkpoint
) -> Checkpoint:
    """A projector that takes the lock of a stopped projection tries its event again (this
    release may read it): it stops there again if not."""
    log.warning(
        "projection %s was stopped at event %s (%s): %s; trying that event again",
        projection.name,
        checkpoint.failed_event_id,
        checkpoint.failed_event_type,
        checkpoint.error,
    )
    await read_models.retry(projection.name)
    return await read_models.checkpoint(projection.name)


def _report_stop(projection: Projection, checkpoint: Checkpoint) -> None:
    log.error(
        "projection %s stopped at event %s (%s): %s; the other projections go on."
        " 'cqrs-demo projections skip %s --event %s' goes on after it",
        projection.name,
        checkpoint.failed_event_id,
        checkpoint.failed_event_type,
        checkpoint.error,
        projection.name,
        checkpoint.failed_event_id,
    )
