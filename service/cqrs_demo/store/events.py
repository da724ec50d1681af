"""Appending events to streams, and reading where a stream stands."""

from collections.abc import Mapping, Sequence
from decimal import Decimal

import orjson

from cqrs_demo.domain.errors import ExpectedVersionMismatch
from cqrs_demo.domain.events import DomainEvent
from cqrs_demo.store.pool import Pool, connection
from cqrs_demo.store.sql import query


class PostgresEventStore:
    """Streams of events in the ``events`` table, one row per event."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def append_events(
        self,
        stream: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: int | None,
        metadata: Mapping[str, object],
    ) -> int:
        """Append all ``events`` to ``stream`` in one transaction, or none of them.

        The events take versions head+1..head+n, where head is the stream's version when the
        statement runs; with ``expected_version`` given, head must equal it. Returns the
        stream's new version. Raises ``ExpectedVersionMismatch`` (both versions) when the
        stream was elsewhere or a concurrent append took the versions first,
        ``StoreUnavailable`` or ``StoreError`` (see ``connection``).
        """
        if not events:
            raise ValueError("append_events needs at least one event")
        params = {
            "stream": stream,
            "expected_version": expected_version,
            "event_types": [event.event_type for event in events],
            "payloads": [encode_json(event.payload()) for event in events],
            "occurred_on": [event.occurred_on for event in events],
            "event_ids": [event.event_id for event in events],
            "metadata": encode_json(metadata),
        }
        async with connection(self._pool) as conn:
            cursor = await conn.execute(query("append_events"), params)
            row = await cursor.fetchone()
        assert row is not None
        based_on_version, stream_version, appended = row
        assert isinstance(based_on_version, int)
        assert isinstance(stream_version, int)
        if not appended:
            raise ExpectedVersionMismatch(stream, based_on_version, stream_version)
        return stream_version

    async def stream_version(self, stream: str) -> int:
        """The version of the stream's last event; 0 for a stream with no events."""
        async with connection(self._pool) as conn:
            cursor = await conn.execute(query("stream_version"), {"stream": stream})
            row = await cursor.fetchone()
        assert row is not None
        assert isinstance(row[0], int)
        return row[0]


def encode_json(value: Mapping[str, object]) -> str:
    """JSON text with ``Decimal`` written as an exact number literal, never via a float."""
    return orjson.dumps(value, default=_exact_decimal).decode()


def _exact_decimal(value: object) -> orjson.Fragment:
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
