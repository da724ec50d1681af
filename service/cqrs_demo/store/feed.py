"""Reading the global feed: every stream's events in the order no reader can skip one."""

from cqrs_demo.ports import FeedEvent, FeedPage, Position
from cqrs_demo.store.pool import Database
from cqrs_demo.store.sql import query
from cqrs_demo.store.streams import recorded_event


async def read_feed(
    database: Database, after: Position, limit: int, *, metadata: bool = True
) -> FeedPage:
    """See ``PostgresEventStore.read_feed``; without ``metadata``, each event's metadata is
    not read (an empty mapping)."""
    params = {
        "transaction_id": str(after.transaction_id),
        "event_number": after.event_number,
        "limit": limit,
        "metadata": metadata,
    }
    async with database.connection() as conn:
        cursor = await conn.execute(query("read_feed"), params)
        rows = await cursor.fetchall()
    events = tuple(_feed_event(*row) for row in rows)
    return FeedPage(events, events[-1].position if events else after)


class ProjectionFeed:
    """The feed as projections read it: ``PostgresEventStore.read_feed``'s events, but
    their metadata is not read (each is an empty mapping): no projection reads it, and
    sending and decoding it was a fifth of a rebuild's time in Python."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def read_feed(self, after: Position, limit: int) -> FeedPage:
        """See ``PostgresEventStore.read_feed``, metadata aside."""
        return await read_feed(self._database, after, limit, metadata=False)


def _feed_event(
    transaction_id: object, event_number: object, stream: object, *event: object
) -> FeedEvent:
    assert isinstance(transaction_id, str)
    assert isinstance(event_number, int)
    assert isinstance(stream, str)
    return FeedEvent(Position(int(transaction_id), event_number), stream, recorded_event(*event))
