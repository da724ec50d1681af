"""The ``cqrs-demo project`` process: every projection's loop, and the wake-ups.

It connects, checks the schema, tells systemd ``READY=1``, then runs one loop per projection
(``runner.run_projection``: each waits for its own lock, so on a second host it waits) and
one listener that wakes them all (while one of them wants it: ``wakeups``). SIGTERM or
SIGINT: ``STOPPING=1``, the loops are cancelled (a batch being committed is either committed
or rolled back by the server), connections closed, exit 0. A loop that ends on an error it
cannot outlive: exit 1, systemd restarts.

The stop is bounded (``stopping``): a server that answers nothing (a host hung or cut off)
made it last 15 s, the unit's ``TimeoutStopSec``, and systemd killed the process; now the
loops still waiting for the server ``STOP_GRACE_SECONDS`` after the stop have their
connections closed.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from cqrs_demo.domain.projections import Projection
from cqrs_demo.ports import Wakeups
from cqrs_demo.projector.runner import Parts, collect_less, run_projection
from cqrs_demo.projector.stopping import STOP_GRACE_SECONDS, cancel_within, stop_signals
from cqrs_demo.projector.wakeups import ProjectionWakeups
from cqrs_demo.release import release_id
from cqrs_demo.systemd import notify

log = logging.getLogger("cqrs_demo.projector")


@dataclass(frozen=True, slots=True)
class Projector:
    """The process's parts, wired by ``bootstrap.create_projector``. ``start`` connects and
    checks the schema (raising if it cannot), ``stop`` closes; ``listen`` wakes its
    argument on every notification of new events while it wants them, until cancelled;
    ``outlived`` are the errors a projection's loop logs and retries after (the store's)."""

    projections: Mapping[str, Projection]
    parts: Parts
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]
    listen: Callable[[Wakeups], Coroutine[Any, Any, NoReturn]]
    outlived: tuple[type[Exception], ...]


def project(projector: Projector) -> int:
    """Run until SIGTERM or SIGINT (0) or a loop's unexpected end (1)."""
    collect_less()
    return asyncio.run(_run(projector))


async def _run(projector: Projector) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in stop_signals():
        loop.add_signal_handler(signum, stop.set)
    await projector.start()
    wakeups = ProjectionWakeups(tuple(projector.projections))
    tasks: list[asyncio.Task[NoReturn]] = [
        asyncio.create_task(projector.listen(wakeups), name="listen")
    ]
    for name, projection in projector.projections.items():
        running = run_projection(projection, projector.parts, wakeups.of(name), projector.outlived)
        tasks.append(asyncio.create_task(running, name=name))
    names = ", ".join(projector.projections)
    notify(f"READY=1\nSTATUS=projecting {names}, release {release_id()}")
    log.info("projector started: %s (each once it holds its lock), release %s", names, release_id())
    stopping = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if stopping in done:
            log.info("stopping on a signal")
            return 0
        failed = next(task for task in tasks if task in done)
        log.error("%s ended: %r; exiting", failed.get_name(), failed.exception())
        return 1
    finally:
        notify("STOPPING=1")
        reads = projector.parts.feed.reads()
        await cancel_within(STOP_GRACE_SECONDS, [stopping, *tasks, *reads])
        await projector.stop()
        log.info("projector stopped")
