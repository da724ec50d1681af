"""Appends waiting to be written: what both write paths take, the JSON they send, and
the ``Appended`` a recorded row stands for."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import orjson

from cqrs_demo.domain.events import DomainEvent
from cqrs_demo.ports import Appended, IdempotencyKey, Position


@dataclass(frozen=True, slots=True)
class PendingAppend:
    """One command's append, as it waits for its batch."""

    stream: str
    events: Sequence[DomainEvent]
    expected_version: int | None
    metadata: Mapping[str, object]
    idempotency: IdempotencyKey | None
    result: Mapping[str, object]


def encode_json(value: object) -> str:
    """JSON text with ``Decimal`` written as an exact number literal, never via a float."""
    return orjson.dumps(value, default=_exact_decimal).decode()


def _exact_decimal(value: object) -> orjson.Fragment:
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def appended_row(
    stream_version: object,
    event_ids: object,
    result: object,
    transaction_id: object,
    event_number: object,
    *,
    replayed: bool,
) -> Appended:
    """The ``Appended`` of a row that ``append_events`` or an idempotency key's record
    gives: the stream's version, the event ids, the result, the last event's position."""
    assert isinstance(stream_version, int)
    assert isinstance(event_ids, list)
    assert isinstance(result, dict)
    assert isinstance(transaction_id, str)
    assert isinstance(event_number, int)
    position = Position(int(transaction_id), event_number)
    return Appended(stream_version, tuple(event_ids), result, position, replayed)
