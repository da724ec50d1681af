"""``cqrs-demo projections rebuild NAME``: a projection built afresh from the start of the
feed into tables of its own, while the live ones keep answering, then swapped in.

The batches are the live projector's (``runner.apply_page``), on the rebuild's tables and
checkpoint: an interrupted rebuild resumes where it was. An event the rebuild cannot apply
stops it, unless an operator skipped that event for the projection itself (then it is
skipped here too, so the rebuilt tables agree with the live ones). Once it has read every
event, the swap replaces the live tables in one transaction, and the live projector goes on
from the rebuild's position.
"""

import asyncio
import time
from collections.abc import Callable

from cqrs_demo.domain.projections import Projection
from cqrs_demo.ports import Checkpoint, Rebuild
from cqrs_demo.projector.feed import DecodedPage, SharedFeed
from cqrs_demo.projector.runner import apply_page, collect_less


class RebuildStopped(Exception):
    """The rebuild met an event it cannot apply; its tables and checkpoint are kept."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        super().__init__(
            f"the rebuild stopped at event {checkpoint.failed_event_id}"
            f" ({checkpoint.failed_event_type}): {checkpoint.error}"
        )
        self.checkpoint = checkpoint


# progress(events applied, events in all, seconds since the start)
Progress = Callable[[int, int, float], None]


async def rebuild(
    projection: Projection,
    rebuilding: Rebuild,
    feed: SharedFeed,
    progress: Progress,
    *,
    afresh: bool,
) -> Checkpoint:
    """Rebuild ``projection`` (resume the rebuild there is unless ``afresh``) and swap it
    in; the projection's checkpoint after the swap. Raises ``RebuildStopped``, and what the
    store raises. Sets this process's cycle collector as the projector's (``collect_less``)."""
    collect_less()
    checkpoint = await rebuilding.start(afresh=afresh)
    if checkpoint.state == "stopped":
        await rebuilding.read_models.retry(rebuilding.name)  # this release may read it
        checkpoint = await _checkpoint(rebuilding)
    total = checkpoint.events_applied + await rebuilding.remaining(checkpoint.position)
    started = time.monotonic()
    reading = _read_after(feed, checkpoint)
    while True:
        page = await reading
        if not page.events:
            return await rebuilding.swap()
        # The next page is read (in PostgreSQL, and decoded) while this one is applied.
        reading = asyncio.ensure_future(feed.page_after(page.events[-1].position))
        try:
            checkpoint = await _apply(projection, rebuilding, checkpoint, page)
        except BaseException:
            reading.cancel()
            raise
        if checkpoint.position != page.events[-1].position:  # stopped, and skipped an event
            reading.cancel()
            reading = _read_after(feed, checkpoint)
        total = max(total, checkpoint.events_applied)
        progress(checkpoint.events_applied, total, time.monotonic() - started)


def _read_after(feed: SharedFeed, checkpoint: Checkpoint) -> "asyncio.Future[DecodedPage]":
    return asyncio.ensure_future(feed.page_after(checkpoint.position))


async def _apply(
    projection: Projection, rebuilding: Rebuild, checkpoint: Checkpoint, page: DecodedPage
) -> Checkpoint:
    """``apply_page`` on the rebuild's checkpoint; an event it cannot apply is skipped if
    the live projection skipped it, else raises ``RebuildStopped``."""
    after = await apply_page(projection, rebuilding.read_models, rebuilding.name, checkpoint, page)
    if after is None:
        raise RuntimeError(f"the checkpoint {rebuilding.name} moved under this rebuild")
    if after.state == "stopped":
        if not await rebuilding.skip_as_live():
            raise RebuildStopped(after)
        after = await _checkpoint(rebuilding)
    return after


async def _checkpoint(rebuilding: Rebuild) -> Checkpoint:
    checkpoint = await rebuilding.read_models.checkpoint_if_any(rebuilding.name)
    if checkpoint is None:
        raise RuntimeError(f"the checkpoint {rebuilding.name} is gone (dropped meanwhile?)")
    return checkpoint
