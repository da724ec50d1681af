"""Errors the domain raises: a refused command, and a stream that moved under a command."""

from dataclasses import dataclass


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
