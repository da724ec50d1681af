"""Reading what a command recorded under its idempotency key, outside of an append."""

from datetime import timedelta

from cqrs_demo.domain.errors import IdempotencyKeyReused
from cqrs_demo.ports import Appended, IdempotencyKey
from cqrs_demo.store.pending import appended_row
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
    return appended_row(
        stream_version, event_ids, result, transaction_id, event_number, replayed=True
    )
