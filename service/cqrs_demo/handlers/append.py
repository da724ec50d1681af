"""What every command's append shares: its metadata, its idempotency key, its outcome."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from cqrs_demo.domain.events import DomainEvent
from cqrs_demo.domain.fields import Command, fingerprint
from cqrs_demo.ports import Appended, EventStore, IdempotencyKey, Position


@dataclass(frozen=True, slots=True)
class CommandContext:
    """Who and what caused a command: kept in every event's metadata."""

    command_id: UUID
    correlation_id: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    """A command's outcome: the stream it went to, the stream's version after it, the ids of
    its events, and what the command records for its answer (``result``: the order id).
    ``replayed``: an idempotency key matched an earlier command, whose outcome this is.
    ``position``: the feed position of its last event; a reader of the feed that has
    passed it sees the command's effects (read-your-writes)."""

    stream: str
    version: int
    event_ids: tuple[UUID, ...]
    result: Mapping[str, object]
    replayed: bool
    position: Position


@dataclass(frozen=True, slots=True)
class Envelope:
    """What goes with a command's events: their metadata and the command's idempotency key."""

    metadata: Mapping[str, object]
    idempotency: IdempotencyKey | None


def utc_now() -> datetime:
    return datetime.now(UTC)


def envelope(command: Command, context: CommandContext) -> Envelope:
    """The metadata of ``command``'s events (command id, correlation id, the client's time
    and idempotency key when sent) and its ``IdempotencyKey``, fingerprinted."""
    metadata: dict[str, object] = {
        "command_id": str(context.command_id),
        "correlation_id": context.correlation_id,
    }
    if command.timestamp is not None:
        metadata["client_timestamp"] = command.timestamp.isoformat()
    idempotency = None
    if context.idempotency_key is not None:
        idempotency = IdempotencyKey(context.idempotency_key, fingerprint(command))
        metadata["idempotency_key"] = context.idempotency_key
    return Envelope(metadata, idempotency)


async def append(
    store: EventStore,
    stream: str,
    events: Sequence[DomainEvent],
    wrapper: Envelope,
    *,
    expected_version: int | None,
    result: Mapping[str, object],
) -> Accepted:
    """Append ``events`` with their envelope; see ``EventStore.append_events``. With an
    idempotency key, a repeat of the command is answered with the first one's outcome."""
    appended = await store.append_events(
        stream,
        events,
        expected_version=expected_version,
        metadata=wrapper.metadata,
        idempotency=wrapper.idempotency,
        result=result,
    )
    return accepted(stream, appended)


def accepted(stream: str, appended: Appended) -> Accepted:
    return Accepted(
        stream,
        appended.stream_version,
        appended.event_ids,
        appended.result,
        appended.replayed,
        appended.position,
    )
