"""Domain events: facts that happened, immutable, stored with their ``event_type``, and
read back from storage by that type.

The events themselves live with the aggregate they belong to (``orders``); this module
holds what every event offers and the decoding of stored ones.
"""

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import ClassVar, Protocol, TypeVar
from uuid import UUID

from cqrs_demo.domain.errors import UnreadableEvent


class DomainEvent(Protocol):
    """What every event offers the store: its identity, type, time and JSON payload."""

    event_type: ClassVar[str]

    @property
    def event_id(self) -> UUID: ...

    @property
    def occurred_on(self) -> datetime: ...

    def payload(self) -> dict[str, object]:
        """The event as a JSON object; numbers may be ``int`` or exact ``Decimal``."""
        ...


E = TypeVar("E", covariant=True)


class StoredForm(Protocol[E]):
    """An event type that can be read back from its stored payload."""

    def from_payload(
        self, event_id: UUID, occurred_on: datetime, payload: Mapping[str, object]
    ) -> E: ...


class _MissingField(Exception):
    """A stored payload lacks a field, or holds it with the wrong type."""


def decode_event(
    types: Mapping[str, StoredForm[E]],
    event_type: str,
    event_id: UUID,
    occurred_on: datetime,
    payload: Mapping[str, object],
) -> E:
    """The domain event a stored one stands for, chosen by ``event_type`` among ``types``.

    Raises ``UnreadableEvent`` naming the event and why: an unknown type, or a payload
    without a field the type needs. (The row's ``occurred_on`` is the event's time; a
    payload's own copy is not read.)
    """
    form = types.get(event_type)
    if form is None:
        known = ", ".join(sorted(types))
        raise UnreadableEvent(event_id, event_type, f"unknown event type (known: {known})")
    try:
        return form.from_payload(event_id, occurred_on, payload)
    except _MissingField as missing:
        raise UnreadableEvent(event_id, event_type, str(missing)) from None


def text_field(payload: Mapping[str, object], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise _MissingField(f"payload field {name!r} is not a string: {value!r:.40}")
    return value


def optional_text_field(payload: Mapping[str, object], name: str) -> str | None:
    value = payload.get(name)
    return None if value is None else text_field(payload, name)


def integer_field(payload: Mapping[str, object], name: str) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _MissingField(f"payload field {name!r} is not an integer: {value!r:.40}")
    return value


def decimal_field(payload: Mapping[str, object], name: str) -> Decimal:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _MissingField(f"payload field {name!r} is not a number: {value!r:.40}")
    return Decimal(value)
