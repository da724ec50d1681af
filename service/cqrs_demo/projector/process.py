"""The ``cqrs-demo project`` process: every projection's loop, and the wake-ups.

It connects, checks the schema, tells systemd ``READY=1``, then runs one loop per projection
(``runner.run_projection``: each waits for its own lock, so on a second host it waits) and
one listener that wakes them all (while one of them wants it: ``wakeups``). SIGTERM or
SIGINT: ``STOPPING=1``, the loops are cancelled (a batch being committed is either committed
or rolled back by the server), connections closed, exit 0. A loop that ends on an error it
cannot outlive: exit 1, systemd restarts.

The stop is bounded: a statement running when the loops are cancelled is cancelled in the
server by psycopg, which waits up to 5 s for the cancel request to be taken and 5 s more for
the statement to end. A server that answers nothing (a host hung or cut off) made a stop
last 15 s, the unit's ``TimeoutStopSec``, and systemd killed the process. After
``STOP_GRACE_SECONDS`` the loops still running are cancelled again, which makes psycopg
close their connections at once (the server rolls back what they had not committed: the
batch and its checkpoint together, so nothing is applied twice or lost).
"""

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from cqrs_demo.domain.projections import Projection
from cqrs_demo.ports import Wakeups
from cqrs_demo.projector.runner import Parts, collect_less, run_projection
from cqrs_demo.projector.wakeups import ProjectionWakeups
from cqrs_demo.release import release_id
from cqrs_demo.systemd import notify

log = logging.getLogger("cqrs_demo.projector")

# How long the stop waits for the loops to end once cancelled, before it closes the
# connections of those still waiting for the server (module docstring).
STOP_GRACE_SECONDS = 3.0


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
    for signum in (signal.SIGTERM, signal.SIGINT):
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
        await _cancel_within(STOP_GRACE_SECONDS, [stopping, *tasks, *reads])
        await projector.stop()
        log.info("projector stopped")


async def _cancel_within(seconds: float, tasks: list["asyncio.Task[Any]"]) -> None:
    """Cancel ``tasks`` and wait for them ``seconds`` at most; then cancel those still
    waiting for the database again, which closes their connections (module docstring),
    and wait for them to end."""
    for task in tasks:
        task.cancel()
    _, waiting = await asyncio.wait(tasks, timeout=seconds)
    if waiting:
        names = ", ".join(sorted(task.get_name() for task in waiting))
        log.warning(
            "the database did not answer within %.0f s of the stop (%s); closing their"
            " connections without waiting: the server rolls back what they had not committed",
            seconds,
            names,
        )
        for task in waiting:
            task.cancel()
        await asyncio.wait(waiting)
