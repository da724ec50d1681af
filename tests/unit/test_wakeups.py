"""The projections' wake-ups: wanted unless every projection reads on a timer (busy); a
projection that waits wants them again, and the listener waiting for that hears of it."""

import asyncio

from cqrs_demo.projector.wakeups import ProjectionWakeups


def test_wanted_until_every_projection_is_busy() -> None:
    wakeups = ProjectionWakeups(("orders", "summaries"))
    assert wakeups.wanted()
    wakeups.of("orders").busy(True)
    assert wakeups.wanted()  # summaries may still be waiting for one
    wakeups.of("summaries").busy(True)
    assert not wakeups.wanted()
    wakeups.of("orders").busy(False)
    assert wakeups.wanted()


def test_a_projection_that_waits_wants_them_again_and_the_listener_hears_it() -> None:
    async def scenario() -> tuple[bool, float, bool]:
        wakeups = ProjectionWakeups(("orders",))
        wakeups.of("orders").busy(True)
        loop = asyncio.get_running_loop()
        started = loop.time()
        listener = asyncio.ensure_future(wakeups.until_wanted(5.0))
        await asyncio.sleep(0.05)
        still_waiting = not listener.done()
        waiting = asyncio.ensure_future(wakeups.of("orders").wait(5.0))
        await listener
        heard_after = loop.time() - started
        wakeups.wake()
        await waiting
        return still_waiting, heard_after, wakeups.wanted()

    still_waiting, heard_after, wanted = asyncio.run(scenario())
    assert still_waiting  # nobody wanted wake-ups for 50 ms
    assert heard_after < 1.0  # not the 5 s timeout
    assert wanted


def test_until_wanted_gives_up_after_its_seconds_while_all_stay_busy() -> None:
    async def scenario() -> tuple[float, bool]:
        wakeups = ProjectionWakeups(("orders", "summaries"))
        wakeups.of("orders").busy(True)
        wakeups.of("summaries").busy(True)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await wakeups.until_wanted(0.2)
        return loop.time() - started, wakeups.wanted()

    waited, wanted = asyncio.run(scenario())
    assert 0.15 < waited < 1.0
    assert not wanted


def test_a_wake_up_ends_a_wait_and_is_cleared() -> None:
    async def scenario() -> tuple[float, float]:
        wakeups = ProjectionWakeups(("orders",))
        wakeup = wakeups.of("orders")
        loop = asyncio.get_running_loop()
        wakeups.wake()
        started = loop.time()
        await wakeup.wait(5.0)
        woken = loop.time() - started
        started = loop.time()
        await wakeup.wait(0.2)  # cleared by the first wait: this one times out
        return woken, loop.time() - started

    woken, timed_out = asyncio.run(scenario())
    assert woken < 0.1
    assert 0.15 < timed_out < 1.0
