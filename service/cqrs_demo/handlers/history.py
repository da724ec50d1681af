"""Commands whose rules depend on the past: read the user's stream, fold it, decide, append
at the version read; on a race lost to another command, read and decide again."""

from collections.abc import Callable, Sequence

from cqrs_demo.domain import orders
from cqrs_demo.domain.errors import ExpectedVersionMismatch, Refused
from cqrs_demo.domain.events import DomainEvent, decode_event
from cqrs_demo.domain.fields import Command
from cqrs_demo.handlers.append import Accepted, CommandContext, Envelope, accepted, append, envelope
from cqrs_demo.ports import EventStore, StreamSlice

# Reads and decisions in all for a command sent without an expected version, when other
# commands keep committing to the stream between its read and its append: after that
# many, the last conflict is the answer (409), and the client may retry.
MAX_ATTEMPTS = 4

Decide = Callable[[orders.UserOrders], Sequence[DomainEvent]]


async def decide_from_history(
    store: EventStore,
    command: Command,
    context: CommandContext,
    decide: Decide,
    *,
    result: dict[str, object],
) -> Accepted:
    """Decide ``command`` on its stream's state and append the events at the version read.

    With the command's ``expected_version``, the stream must be at it (else
    ``ExpectedVersionMismatch`` at once, as for an append). Without one, a conflict with a
    command that committed between the read and the append is retried (read, fold,
    decide, append), ``MAX_ATTEMPTS`` times in all. A refusal (``Refused`` from ``decide``,
    or a version mismatch) of a command whose idempotency key is recorded is answered with
    the recorded outcome: the refusal is then the command's own earlier success.
    Raises what ``decide`` raises, ``UnreadableEvent`` for a stored event the domain
    cannot read, and what ``EventStore.append_events`` raises.
    """
    wrapper = envelope(command, context)
    stream = command.stream
    for attempt in range(1, MAX_ATTEMPTS + 1):
        read = await store.read_stream(stream)
        try:
            events = _decide(stream, command, read, decide)
            return await append(
                store, stream, events, wrapper, expected_version=read.stream_version, result=result
            )
        except (ExpectedVersionMismatch, Refused) as refusal:
            retry = (
                isinstance(refusal, ExpectedVersionMismatch) and command.expected_version is None
            )
            if retry and attempt < MAX_ATTEMPTS:
                continue
            recorded = await _recorded(store, stream, wrapper)
            if recorded is None:
                raise
            return recorded
    raise AssertionError("unreachable: the last attempt returns or raises")


def _decide(
    stream: str, command: Command, read: StreamSlice, decide: Decide
) -> Sequence[DomainEvent]:
    if command.expected_version is not None and read.stream_version != command.expected_version:
        raise ExpectedVersionMismatch(stream, command.expected_version, read.stream_version)
    state = orders.fold(
        decode_event(orders.EVENT_TYPES, e.event_type, e.event_id, e.occurred_on, e.payload)
        for e in read.events
    )
    return decide(state)


async def _recorded(store: EventStore, stream: str, wrapper: Envelope) -> Accepted | None:
    """The recorded outcome of the command's idempotency key, if it has one and it is
    recorded (``IdempotencyKeyReused`` when recorded for another command)."""
    if wrapper.idempotency is None:
        return None
    appended = await store.recorded_outcome(wrapper.idempotency)
    return None if appended is None else accepted(stream, appended)
