"""The notification every appending transaction sends, for readers of the feed to wake by.

Both write paths (``queries/append_single_events.sql``, ``functions/append_events.sql``)
call ``pg_notify`` on ``EVENTS_CHANNEL`` once in a transaction that inserted events, with an
empty payload. PostgreSQL delivers it when that transaction commits, never if it rolls back,
and to sessions that ``LISTEN`` on the channel. It says only "the feed may have grown": an
event committed is not yet in the feed while an older transaction still runs
(``store/feed.py``), so a reader that wakes reads the feed, and still reads it now and then.
"""

# Written as a literal in both SQL files; tests/store/test_positions_and_notifications.py
# listens on this name and fails if they differ.
EVENTS_CHANNEL = "cqrs_events"
