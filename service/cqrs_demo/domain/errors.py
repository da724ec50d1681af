"""Errors the domain raises: a refused command, a stream that moved under a command, an
order a decision refuses, and a stored event that cannot be read."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from cqrs_demo.domain.text import printable


@dataclass(frozen=True, slots=True)
class FieldError:
    """One failing field of a command, with a message that names it."""

    field: str
    message: str


class InvalidCommand(Exception):
    """The command's fields break its rules; ``errors`` lists the failing fields, all but
    ``unlisted`` of them (unknown fields past the first few are only counted)."""

    def __init__(self, errors: list[FieldError], *, unlisted: int = 0) -> None:
        messages = [error.message for error in errors]
        if unlisted:
            messages.append(f"and {unlisted} more unknown fields")
        super().__init__("; ".join(messages))
        self.errors = tuple(errors)
        self.unlisted = unlisted


class ExpectedVersionMismatch(Exception):
    """The stream was not at the version the append expected; nothing was written."""

    def __init__(self, stream: str, expected_version: int, actual_version: int) -> None:
        super().__init__(
            f"stream {stream!r} is at version {actual_version}, expected {expected_version}"
        )
        self.stream = stream
        self.expected_version = expected_version
        self.actual_version = actual_version


class IdempotencyKeyReused(Exception):
    """The idempotency key was already used, for a different request."""

    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} was already used for a different request")
        self.key = key


class IdempotencyKeyInFlight(Exception):
    """A request with the same idempotency key is still being handled."""

    def __init__(self, key: str) -> None:
        super().__init__(f"a request with Idempotency-Key {key!r} is still in progress")
        self.key = key


class Refused(Exception):
    """A decision refused a command: its rules do not allow it on the stream's state."""


class OrderNotFound(Refused):
    """The order is not one of this user's: it is not in the user's stream."""

    def __init__(self, order_id: str, user_id: str) -> None:
        super().__init__(
            f"order {printable(order_id)!r} is not an order of user {printable(user_id)!r}"
        )
        self.order_id = order_id
        self.user_id = user_id


class OrderAlreadyCancelled(Refused):
    """The order was cancelled before; a second cancel is refused."""

    def __init__(self, order_id: str, cancelled_on: datetime) -> None:
        super().__init__(
            f"order {printable(order_id)!r} was already cancelled at {cancelled_on.isoformat()}"
        )
        self.order_id = order_id
        self.cancelled_on = cancelled_on


class UnreadableEvent(Exception):
    """A stored event the domain cannot read: an unknown type, a payload without a field it
    needs, or a fact that contradicts the stream before it. The data needs an operator."""

    def __init__(self, event_id: UUID, event_type: str, reason: str) -> None:
        super().__init__(
            f"stored event {event_id} ({printable(event_type)}) is unreadable: {reason}"
        )
        self.event_id = event_id
        self.event_type = event_type
