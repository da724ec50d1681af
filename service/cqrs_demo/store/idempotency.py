"""Reading what a command recorded under its idempotency key, outside of an append."""

from datetime import timedelta

from cqrs_demo.domain.errors import IdempotencyKeyReused
from cqrs_demo.ports import Appended, IdempotencyKey, Position
from cqrs_demo.store.pool import Database
from cqrs_demo.store.sql import query


async def recorded_outcome(
    database: Database, idempotency: IdempotencyKey, retention: timedelta
) -> Appended | None:
    """See ``PostgresEventStore.recorded_outcome``."""
    params = {"key": idempotency.key, "retention": retention}
    async with database.connection() as conn:
        cursor = await conn.execute(query("idempotency_outcome"), params)
        row = await cursor.fetchone()
    if row is None:
        return None
    request_hash, stream_version, event_ids, result, transaction_id, event_number = row
    if request_hash != idempotency.request_hash:
        raise IdempotencyKeyReused(idempotency.key)
    assert isinstance(stream_version, int)
    assert isinstance(event_ids, list)
    assert isinstance(result, dict)
    assert isinstance(transaction_id, str)
    assert isinstance(event_number, int)
    position = Position(int(transaction_id), event_number)
    return Appended(stream_version, tuple(event_ids), result, position, replayed=True)
