"""Reading one stream: its events in either direction, and its version, in one snapshot."""

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from uuid import UUID

from cqrs_demo.ports import Direction, RecordedEvent, StreamSlice
from cqrs_demo.store.pool import Database
from cqrs_demo.store.sql import query

_QUERIES = {
    Direction.FORWARD: "read_stream_forward",
    Direction.BACKWARD: "read_stream_backward",
}
# JSON numbers with a fraction or an exponent as exact decimals, as they were sent.
_JSON = json.JSONDecoder(parse_float=Decimal)
_NOTHING: Mapping[str, object] = MappingProxyType({})


async def read_stream(
    database: Database,
    stream: str,
    *,
    from_version: int | None,
    limit: int | None,
    direction: Direction,
) -> StreamSlice:
    """See ``PostgresEventStore.read_stream``."""
    if direction is Direction.FORWARD and from_version is None:
        from_version = 1
    params = {"stream": stream, "from_version": from_version, "limit": limit}
    async with database.connection() as conn:
        cursor = await conn.execute(query(_QUERIES[direction]), params)
        rows = await cursor.fetchall()
    events = tuple(recorded_event(*row[1:]) for row in rows if row[1] is not None)
    stream_version = rows[0][0]
    assert isinstance(stream_version, int)
    return StreamSlice(events, stream_version)


def recorded_event(
    event_id: object,
    event_type: object,
    version: object,
    occurred_on: object,
    payload: object,
    metadata: object,
) -> RecordedEvent:
    """A stored event from its columns (payload and metadata as JSON text; metadata
    ``None``: not read, an empty mapping)."""
    assert isinstance(event_id, UUID)
    assert isinstance(event_type, str)
    assert isinstance(version, int)
    assert isinstance(occurred_on, datetime)
    assert isinstance(payload, str)
    assert isinstance(metadata, str | None)
    return RecordedEvent(
        event_id,
        event_type,
        version,
        occurred_on,
        _decode(payload),
        _NOTHING if metadata is None else _decode(metadata),
    )


def _decode(text: str) -> Mapping[str, object]:
    """JSON as PostgreSQL writes ``jsonb`` out: ``raw_decode`` is ``decode`` without its
    two scans for surrounding whitespace (there is none), a third faster."""
    value, _ = _JSON.raw_decode(text)
    return value  # type: ignore[no-any-return]


async def stream_version(database: Database, stream: str) -> int:
    """See ``PostgresEventStore.stream_version``."""
    async with database.connection() as conn:
        cursor = await conn.execute(query("stream_version"), {"stream": stream})
        row = await cursor.fetchone()
    assert row is not None
    assert isinstance(row[0], int)
    return row[0]
