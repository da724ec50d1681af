"""The event store as the handlers and the API need it: the port that ``store/`` implements.

The handlers and the API depend on this contract, never on the store's package; the store
imports these types to return them. Nothing here does I/O.
"""

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from cqrs_demo.domain.events import DomainEvent


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A client's key for one command, and the fingerprint of the command it came with."""

    key: str
    request_hash: str


@dataclass(frozen=True, slots=True)
class Appended:
    """A command's events as stored: the stream's version after them and their ids.

    ``replayed`` is true when an idempotency key matched an earlier command: nothing new
    was written, and ``result`` is what that command recorded.
    """

    stream_version: int
    event_ids: tuple[UUID, ...]
    result: Mapping[str, object]
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One stored event of a stream.

    ``payload`` and ``metadata`` are the JSON objects as stored; a number with a fraction
    or an exponent is an exact ``Decimal``, an integer an ``int``.
    """

    event_id: UUID
    event_type: str
    version: int
    occurred_on: datetime
    payload: Mapping[str, object]
    metadata: Mapping[str, object]


class Direction(enum.Enum):
    """Which way a stream is read: from old to new, or from the head down."""

    FORWARD = "forward"
    BACKWARD = "backward"


@dataclass(frozen=True, slots=True)
class StreamSlice:
    """Some events of a stream, in the order asked for, and the stream's version (its last
    event's; 0 for a stream with no events) as of the same snapshot."""

    events: tuple[RecordedEvent, ...]
    stream_version: int


class EventStore(Protocol):
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
        """Append all ``events`` to ``stream`` or none; see ``PostgresEventStore``."""
        ...

    async def read_stream(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        limit: int | None = None,
        direction: Direction = Direction.FORWARD,
    ) -> StreamSlice:
        """Events of ``stream``, one snapshot; see ``PostgresEventStore``."""
        ...

    async def recorded_outcome(self, idempotency: IdempotencyKey) -> Appended | None:
        """What a command recorded under ``idempotency``'s key, as a replay; ``None`` when
        nothing is recorded. See ``PostgresEventStore``."""
        ...
