"""The notification every appending transaction sends, for readers of the feed to wake by.

Every write path (``queries/append_lone_event.sql``, ``queries/append_single_events.sql``,
``functions/append_events.sql``) calls ``pg_notify`` on ``EVENTS_CHANNEL`` once in a
transaction that inserted events, with an empty payload. PostgreSQL delivers it when that
transaction commits, never if it rolls back, and to sessions that ``LISTEN`` on the channel.
It says only "the feed may have grown": an event committed is not yet in the feed while an
older transaction still runs (``store/feed.py``), so a reader that wakes reads the feed, and
still reads it now and then.

``listen`` is the projector's side: notifications only make it quicker (it also polls), so a
lost listening connection is a warning, and it is made again with a growing pause (0.1 s up
to 10 s). While no projection wants wake-ups (all busy, reading on a timer), it does not
listen (``UNLISTEN``): each notification costs the server a signal and a message, and the
appending transactions come by the hundred or thousand per second then. It listens again
as soon as one wants them, and then wakes them all, for what it did not hear meanwhile.
"""

import asyncio
import logging
from typing import NoReturn

import psycopg

from cqrs_demo.ports import Wakeups
from cqrs_demo.store.connect import RacingConnection
from cqrs_demo.store.sql import query

# Written as a literal in both SQL files; tests/store/test_positions_and_notifications.py
# listens on this name and fails if they differ.
EVENTS_CHANNEL = "cqrs_events"

# How long the listener waits for a notification before it checks its connection: a
# connection lost without a word from the server (a cable, a firewall) is found this late.
CHECK_EVERY_SECONDS = 5.0
RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 10.0

log = logging.getLogger("cqrs_demo.projector")


async def listen(conninfo: str, wakeups: Wakeups) -> NoReturn:
    """Wake ``wakeups`` for every notification on ``EVENTS_CHANNEL`` while they are wanted,
    and each time listening starts (on a new connection, or wanted again: anything sent
    meanwhile was not heard). Runs until cancelled; never raises a connection error: it logs
    a warning and connects again."""
    pause = RETRY_FIRST_SECONDS
    lost = False
    while True:
        try:
            async with await RacingConnection.connect(
                conninfo, autocommit=True, application_name="cqrs-demo projector listen"
            ) as connection:
                await connection.execute(query("projection_listen"))
                if lost:
                    log.info("listening for new events again (channel %s)", EVENTS_CHANNEL)
                lost, pause = False, RETRY_FIRST_SECONDS
                wakeups.wake()
                await _relay(connection, wakeups)
        except psycopg.Error as error:
            if not lost:
                log.warning(
                    "lost the connection listening for new events (%s); polling meanwhile,"
                    " reconnecting in %.1f s and then less often, up to every %.0f s",
                    type(error).__name__,
                    pause,
                    RETRY_MAX_SECONDS,
                )
            lost = True
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_SECONDS)


async def _relay(
    connection: psycopg.AsyncConnection[tuple[object, ...]], wakeups: Wakeups
) -> NoReturn:
    """Relay notifications while wanted; while not, stop listening until they are. The
    connection is pinged whenever ``CHECK_EVERY_SECONDS`` pass without a word."""
    while True:
        async for _ in connection.notifies(timeout=CHECK_EVERY_SECONDS):
            wakeups.wake()
            if not wakeups.wanted():
                break
        if not wakeups.wanted():
            await connection.execute(query("projection_unlisten"))
            while not wakeups.wanted():
                await wakeups.until_wanted(CHECK_EVERY_SECONDS)
                await connection.execute(query("projection_ping"))
            await connection.execute(query("projection_listen"))
            wakeups.wake()
        else:
            await connection.execute(query("projection_ping"))
