"""Appends waiting to be written: what both write paths take, and the JSON they send."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import orjson

from cqrs_demo.domain.events import DomainEvent
from cqrs_demo.ports import IdempotencyKey


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
