"""Wake-ups: what the listener tells the projections, and whether they want it now.

Every appending transaction notifies the projector when it commits (``store.notifications``),
and each notification costs the database a signal and a message to the listening
connection, and this process a read. A projection that is caught up waits for the next one.
A busy projection does not: it reads the feed on a timer (``runner.batch_interval``) while
the feed is busy, or while its reads keep finding events (``runner.TIMED_READS``), so
while every projection of the process is busy the listener stops listening, and listens
again (then wakes them all, for what it did not hear) as soon as one of them is not.
"""

import asyncio


class Wakeup:
    """One projection's wake-ups: ``wait`` for one (or ``seconds``), and ``busy`` to say
    whether it reads on a timer now and needs none."""

    def __init__(self, owner: "ProjectionWakeups", name: str) -> None:
        self._owner = owner
        self._name = name
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        """Until a wake-up (cleared here) or ``seconds``, whichever comes first. A
        projection that waits wants wake-ups (it is not busy)."""
        self.busy(False)
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
        except TimeoutError:
            return
        self._event.clear()

    def busy(self, busy: bool) -> None:
        """Whether the projection reads on a timer now (needing no wake-up)."""
        self._owner.mark(self._name, busy)


class ProjectionWakeups:
    """The wake-ups of ``names``, one ``Wakeup`` each (``of``); the ``ports.Wakeups`` the
    listener serves. Every projection wants wake-ups until it says it is busy."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self._wakeups = {name: Wakeup(self, name) for name in names}
        self._busy: set[str] = set()
        self._changed = asyncio.Event()

    def of(self, name: str) -> Wakeup:
        return self._wakeups[name]

    def wake(self) -> None:
        for wakeup in self._wakeups.values():
            wakeup.set()

    def wanted(self) -> bool:
        return len(self._busy) < len(self._wakeups)

    async def until_wanted(self, seconds: float) -> None:
        if self.wanted():
            return
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), seconds)
        except TimeoutError:
            return

    def mark(self, name: str, busy: bool) -> None:
        if busy:
            self._busy.add(name)
        elif name in self._busy:
            self._busy.discard(name)
            self._changed.set()
