"""Command handlers: one thin function per command, from a valid command to stored events.

A handler decides the events (pure domain code), then appends them to the command's stream
in one call to the store. It neither knows HTTP nor SQL.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

from cqrs_demo.domain import decisions
from cqrs_demo.domain.commands import CreateOrder
from cqrs_demo.domain.events import DomainEvent
from cqrs_demo.domain.ids import uuid7


class EventStore(Protocol):
    async def append_events(
        self,
        stream: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: int | None,
        metadata: Mapping[str, object],
    ) -> int:
        """Append all ``events`` to ``stream`` or none; return the stream's new version.

        With ``expected_version`` None the events go after the stream's current version.
        Raises ``ExpectedVersionMismatch`` when the stream is elsewhere, or moves first.
        """
        ...


@dataclass(frozen=True, slots=True)
class CommandContext:
    """Who and what caused a command: kept in every event's metadata."""

    command_id: UUID
    correlation_id: str


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    """The outcome of ``CreateOrder``: the new order, where it went and what was stored."""

    order_id: str
    stream: str
    version: int
    event_ids: tuple[UUID, ...]


def utc_now() -> datetime:
    return datetime.now(UTC)


async def handle_create_order(
    command: CreateOrder,
    store: EventStore,
    context: CommandContext,
    *,
    clock: Callable[[], datetime] = utc_now,
    new_id: Callable[[], UUID] = uuid7,
) -> OrderPlaced:
    """Place an order: one ``OrderCreated`` appended to the user's stream."""
    events = decisions.create_order(command, now=clock(), new_id=new_id)
    (order_created,) = events
    metadata: dict[str, object] = {
        "command_id": str(context.command_id),
        "correlation_id": context.correlation_id,
    }
    if command.timestamp is not None:
        metadata["client_timestamp"] = command.timestamp.isoformat()
    version = await store.append_events(
        command.user_id, events, expected_version=command.expected_version, metadata=metadata
    )
    return OrderPlaced(
        order_id=order_created.order_id,
        stream=command.user_id,
        version=version,
        event_ids=tuple(event.event_id for event in events),
    )
