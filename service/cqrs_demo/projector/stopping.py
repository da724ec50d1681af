"""A bounded stop for the processes that project: ``cqrs-demo project`` and
``cqrs-demo projections rebuild``.

A statement running when its task is cancelled is cancelled in the server by psycopg, which
waits up to 5 s for the cancel request to be taken and 5 s more for the statement to end. A
server that answers nothing (a host hung or cut off) made a stop last 10 to 20 s. After
``STOP_GRACE_SECONDS`` the tasks still running are cancelled again, which makes psycopg close
their connections at once; the server rolls back what they had not committed (a batch and
its checkpoint together, so nothing is applied twice or lost).
"""

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

log = logging.getLogger("cqrs_demo.projector")

# How long a stop waits for its tasks to end once cancelled, before it closes the
# connections of those still waiting for the server (module docstring).
STOP_GRACE_SECONDS = 3.0

Result = TypeVar("Result")


class Stopped(Exception):
    """A signal stopped the work before it ended."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def stop_signals() -> tuple[signal.Signals, ...]:
    """SIGTERM, and SIGINT unless this process was started with it ignored (a job put in the
    background by a shell without job control: the terminal's Ctrl-C is not for it)."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        return (signal.SIGTERM,)
    return (signal.SIGTERM, signal.SIGINT)


async def until_signal(
    work: Coroutine[Any, Any, Result],
    *,
    name: str,
    also: Callable[[], Iterable["asyncio.Task[Any]"]] = tuple,
) -> Result:
    """The result of ``work`` (its task named ``name``), unless SIGTERM or SIGINT
    (``stop_signals``) comes first: then ``work`` and the tasks ``also`` gives at that moment
    (reads it shares with no one else, say) are cancelled, within ``STOP_GRACE_SECONDS``
    (``cancel_within``), and ``Stopped`` is raised once they have ended."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[int] = loop.create_future()
    signals = stop_signals()
    for signum in signals:
        loop.add_signal_handler(signum, _set_once, received, signum)
    task = loop.create_task(work, name=name)
    waits: list[asyncio.Future[Any]] = [task, received]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        await cancel_within(STOP_GRACE_SECONDS, [task, *also()])
        raise Stopped(received.result())
    finally:
        task.cancel()
        for signum in signals:
            loop.remove_signal_handler(signum)


def _set_once(received: "asyncio.Future[int]", signum: int) -> None:
    if not received.done():
        received.set_result(signum)


async def cancel_within(seconds: float, tasks: list["asyncio.Task[Any]"]) -> None:
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
