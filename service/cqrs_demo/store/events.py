"""Appending events to streams, and reading where a stream stands."""

from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal

import orjson

from cqrs_demo.domain.errors import (
    ExpectedVersionMismatch,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
)
from cqrs_demo.domain.events import DomainEvent
from cqrs_demo.handlers import Appended, IdempotencyKey
from cqrs_demo.store.pool import Database
from cqrs_demo.store.sql import query


class PostgresEventStore:
    """Streams of events in the ``events`` table, one row per event."""

    def __init__(self, database: Database, *, idempotency_retention: timedelta) -> None:
        self._database = database
        self.idempotency_retention = idempotency_retention

    async def append_events(
        self,
        stream: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: int | None,
        metadata: Mapping[str, object],
        idempotency: IdempotencyKey | None = None,
        result: Mapping[str, object] | None = None,
    ) -> Appended:
        """Append all ``events`` to ``stream`` in one transaction, or none of them.

        The events take versions head+1..head+n, where head is the stream's version when the
        statement runs; with ``expected_version`` given, head must equal it. With
        ``idempotency``, the key and ``result`` are recorded in the same transaction, and a
        key seen within the retention period is answered from that record instead.

        Raises ``ExpectedVersionMismatch`` (both versions) when the stream was elsewhere or a
        concurrent append took the versions first; ``IdempotencyKeyReused`` and
        ``IdempotencyKeyInFlight``; ``StoreUnavailable`` or ``StoreError`` (``connection``).
        """
        params = {
            "stream": stream,
            "expected_version": expected_version,
            "event_types": [event.event_type for event in events],
            "payloads": [encode_json(event.payload()) for event in events],
            "occurred_on": [event.occurred_on for event in events],
            "event_ids": [event.event_id for event in events],
            "metadata": encode_json(metadata),
            "key": idempotency.key if idempotency else None,
            "key_request_hash": idempotency.request_hash if idempotency else None,
            "key_result": encode_json(result or {}),
            "idempotency_retention": self.idempotency_retention,
        }
        async with self._database.connection() as conn:
            cursor = await conn.execute(query("append_events"), params)
            row = await cursor.fetchone()
        assert row is not None
        return _appended(stream, idempotency, *row)

    async def stream_version(self, stream: str) -> int:
        """The version of the stream's last event; 0 for a stream with no events."""
        async with self._database.connection() as conn:
            cursor = await conn.execute(query("stream_version"), {"stream": stream})
            row = await cursor.fetchone()
        assert row is not None
        assert isinstance(row[0], int)
        return row[0]

    async def prune_idempotency_keys(self) -> int:
        """Forget keys older than the retention period; return how many were removed."""
        async with self._database.connection() as conn:
            cursor = await conn.execute(
                query("prune_idempotency_keys"), {"retention": self.idempotency_retention}
            )
            return cursor.rowcount


def _appended(
    stream: str,
    idempotency: IdempotencyKey | None,
    outcome: object,
    based_on_version: object,
    stream_version: object,
    event_ids: object,
    result: object,
) -> Appended:
    """Turn a row of ``append_events`` into an ``Appended`` or the error it stands for."""
    key = idempotency.key if idempotency else ""
    match outcome:
        case "appended" | "replayed":
            assert isinstance(stream_version, int)
            assert isinstance(event_ids, list)
            assert isinstance(result, dict)
            return Appended(stream_version, tuple(event_ids), result, outcome == "replayed")
        case "conflict":
            assert isinstance(based_on_version, int)
            assert isinstance(stream_version, int)
            raise ExpectedVersionMismatch(stream, based_on_version, stream_version)
        case "key_reused":
            raise IdempotencyKeyReused(key)
        case "key_in_flight":
            raise IdempotencyKeyInFlight(key)
    raise AssertionError(f"append_events answered {outcome!r}")


def encode_json(value: Mapping[str, object]) -> str:
    """JSON text with ``Decimal`` written as an exact number literal, never via a float."""
    return orjson.dumps(value, default=_exact_decimal).decode()


def _exact_decimal(value: object) -> orjson.Fragment:
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
