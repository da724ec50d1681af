"""Group commit: concurrent appends gathered into one transaction, one WAL flush.

A command that arrives while no batch is being written goes out at once, alone, written
from its caller's own task (no writer task, no extra turn of the loop): a lone client waits
for nothing. Commands that arrive while a batch is being written queue up and
go out together in the next one, up to ``max_batch`` of them in one statement. So the batch
size follows the load, and each command keeps its own outcome (see
``functions/append_events.sql``): batching changes when a command commits, never what.

A further batch overlaps the one being written (up to ``max_in_flight`` at a time) only once
that one has been out for ``overlap_after`` seconds: a batch normally returns well within
that, and waiting for it makes the next batch larger, so each command costs less; one held
up (a row lock, a slow disk) no longer holds up the commands behind it.
"""

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Command = TypeVar("Command")
Outcome = TypeVar("Outcome")


class GroupCommit(Generic[Command, Outcome]):
    """Feeds ``write`` batches of commands; ``write`` returns one outcome per command, in
    order, or raises for the whole batch. An outcome that is an exception is raised to the
    command's caller."""

    def __init__(
        self,
        write: Callable[[Sequence[Command]], Awaitable[Sequence[Outcome | Exception]]],
        *,
        max_batch: int,
        max_in_flight: int,
        overlap_after: float = 0.0,
    ) -> None:
        self._write = write
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.overlap_after = overlap_after
        self._queue: deque[tuple[Command, asyncio.Future[Outcome]]] = deque()
        self._in_flight = 0
        self._last_started = 0.0
        self._retry: asyncio.TimerHandle | None = None
        self._writers: set[asyncio.Task[None]] = set()

    async def submit(self, command: Command) -> Outcome:
        """Append ``command`` with the next batch; return its outcome once committed."""
        if not self._queue and not self._in_flight:
            return await self._write_alone(command)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((command, future))
        self._start_writers()
        return await future

    async def _write_alone(self, command: Command) -> Outcome:
        """A batch of one, written by the caller. (Commands that queue behind it are written
        by writer tasks, which a cancelled caller does not cancel.)"""
        self._in_flight += 1
        self._last_started = time.monotonic()
        try:
            (outcome,) = await self._write([command])
        finally:
            self._in_flight -= 1
            self._start_writers()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _start_writers(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue and self._in_flight < self.max_in_flight:
            now = time.monotonic()
            if self._in_flight and now < self._last_started + self.overlap_after:
                if self._retry is None:
                    wait = self._last_started + self.overlap_after - now
                    self._retry = loop.call_later(wait, self._retry_start)
                return
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            self._in_flight += 1
            self._last_started = now
            writer = loop.create_task(self._write_batch(batch))
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)

    def _retry_start(self) -> None:
        self._retry = None
        self._start_writers()

    async def _write_batch(self, batch: list[tuple[Command, asyncio.Future[Outcome]]]) -> None:
        try:
            outcomes = await self._write([command for command, _ in batch])
        except Exception as error:
            outcomes = [error] * len(batch)
        except BaseException:  # cancelled: so are its callers
            for _, future in batch:
                future.cancel()
            raise
        finally:
            self._in_flight -= 1
            self._start_writers()
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the caller was cancelled; the command stands
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
