"""Reading the global feed: every stream's events in the order no reader can skip one."""

from cqrs_demo.ports import FeedEvent, FeedPage, Position
from cqrs_demo.store.pool import Database
from cqrs_demo.store.sql import query
from cqrs_demo.store.streams import recorded_event


async def read_feed(database: Database, after: Position, limit: int) -> FeedPage:
    """See ``PostgresEventStore.read_feed``."""
    params = {
        "transaction_id": str(after.transaction_id),
        "event_number": after.event_number,
        "limit": limit,
    }
    async with database.connection() as conn:
        cursor = await conn.execute(query("read_feed"), params)
        rows = await cursor.fetchall()
    events = tuple(_feed_event(*row) for row in rows)
    return FeedPage(events, events[-1].position if events else after)


def _feed_event(
    transaction_id: object, event_number: object, stream: object, *event: object
) -> FeedEvent:
    assert isinstance(transaction_id, str)
    assert isinstance(event_number, int)
    assert isinstance(stream, str)
    return FeedEvent(Position(int(transaction_id), event_number), stream, recorded_event(*event))
