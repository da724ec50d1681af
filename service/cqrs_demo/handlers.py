"""Command handlers: one thin function per command, from a valid command to stored events.

A handler decides the events (pure domain code), then appends them to the command's stream
in one call to the store. It knows neither HTTP nor SQL; ``EventStore`` is the port the
store implements.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from cqrs_demo.domain import decisions
from cqrs_demo.domain.commands import CreateOrder
from cqrs_demo.domain.ids import uuid7
from cqrs_demo.ports import EventStore, IdempotencyKey


@dataclass(frozen=True, slots=True)
class CommandContext:
    """Who and what caused a command: kept in every event's metadata."""

    command_id: UUID
    correlation_id: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    """The outcome of ``CreateOrder``: the new order, where it went and what was stored."""

    order_id: str
    stream: str
    version: int
    event_ids: tuple[UUID, ...]
    replayed: bool


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
    """Place an order: one ``OrderCreated`` appended to the user's stream.

    With an idempotency key in ``context``, a repeat of the same command is answered with
    the first one's order, version and event ids, and nothing new is stored.
    """
    events = decisions.create_order(command, now=clock(), new_id=new_id)
    metadata: dict[str, object] = {
        "command_id": str(context.command_id),
        "correlation_id": context.correlation_id,
    }
    if command.timestamp is not None:
        metadata["client_timestamp"] = command.timestamp.isoformat()
    idempotency = None
    if context.idempotency_key is not None:
        idempotency = IdempotencyKey(context.idempotency_key, command.fingerprint())
        metadata["idempotency_key"] = context.idempotency_key
    appended = await store.append_events(
        command.user_id,
        events,
        expected_version=command.expected_version,
        metadata=metadata,
        idempotency=idempotency,
        result={"order_id": events[0].order_id},
    )
    return OrderPlaced(
        order_id=str(appended.result["order_id"]),
        stream=command.user_id,
        version=appended.stream_version,
        event_ids=appended.event_ids,
        replayed=appended.replayed,
    )
