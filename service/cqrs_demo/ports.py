"""The event store as the handlers and the API need it: the port that ``store/`` implements.

The handlers and the API depend on this contract, never on the store's package; the store
imports these types to return them. Nothing here does I/O.
"""

import enum
import re
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Generic, Protocol, TypeVar
from uuid import UUID

from cqrs_demo.domain.events import DomainEvent
from cqrs_demo.domain.projections import ReadRow, RowKey
from cqrs_demo.domain.text import printable


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A client's key for one command, and the fingerprint of the command it came with."""

    key: str
    request_hash: str


@dataclass(frozen=True, slots=True)
class Appended:
    """A command's events as stored: the stream's version after them, their ids, and the
    feed position of the last of them (a reader of the feed that has passed it has read
    them all).

    ``replayed`` is true when an idempotency key matched an earlier command: nothing new
    was written, and ``result`` and ``position`` are that command's.
    """

    stream_version: int
    event_ids: tuple[UUID, ...]
    result: Mapping[str, object]
    position: "Position"
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


_POSITION = re.compile(r"([0-9]{1,20})-([0-9]{1,19})")


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """An event's place in the global feed: the id of the transaction that wrote it, then
    its row id. Events are read in this order, and only those of transactions older than
    every transaction still running, so none is ever skipped (``docs/architecture.md``).
    Clients see it as an opaque string (``str``); ``parse`` reads one back."""

    transaction_id: int
    event_number: int

    def __str__(self) -> str:
        return f"{self.transaction_id}-{self.event_number}"

    @classmethod
    def parse(cls, text: str) -> "Position":
        """The position ``str`` wrote; ``ValueError`` naming the text for anything else."""
        match = _POSITION.fullmatch(text)
        if match is None or int(match[1]) >= 2**64 or int(match[2]) >= 2**63:
            raise ValueError(f"not a position: {text[:60]!r}")
        return cls(int(match[1]), int(match[2]))


# Before every event: a feed read after it starts at the first event.
START = Position(0, 0)


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


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One event of the global feed: where it is, its stream, and the event."""

    position: Position
    stream: str
    event: RecordedEvent


@dataclass(frozen=True, slots=True)
class FeedPage:
    """Events of the feed in order, and the position to read on after: the last event's,
    or the position the read started after when there was none."""

    events: tuple[FeedEvent, ...]
    next: Position


class FeedReader(Protocol):
    """What the projector reads the feed with: ``EventStore.read_feed``, or a reader that
    leaves out what projections do not read (``store.feed.ProjectionFeed``)."""

    async def read_feed(self, after: Position, limit: int) -> FeedPage: ...


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

    async def read_feed(self, after: Position, limit: int) -> FeedPage:
        """Up to ``limit`` events of all streams after ``after``, in feed order, never
        skipping one; see ``PostgresEventStore``."""
        ...


# The read side: read models a projector keeps (``store/migrations/0007_read_models.sql``),
# each at the feed position of its projection's checkpoint.

ORDERS_PROJECTION = "orders"
SUMMARIES_PROJECTION = "user_order_summaries"
ORDER_STATUSES = ("placed", "cancelled")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Projected(Generic[T]):
    """What a query read, and the position of the projection it read: every event up to
    ``position`` (inclusive) is in ``value``, none after it. Read in one snapshot."""

    value: T
    position: Position


@dataclass(frozen=True, slots=True)
class OrderView:
    """One order as its events left it; ``total_price`` exact, as sent."""

    order_id: str
    user_id: str
    product_id: str
    quantity: int
    total_price: Decimal
    status: str
    placed_at: datetime
    cancelled_at: datetime | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class OrderKey:
    """Where an order stands in a user's list, newest first: (placed_at, order_id)."""

    placed_at: datetime
    order_id: str


@dataclass(frozen=True, slots=True)
class OrderPage:
    """Some of a user's orders, newest first, and the key of the last one when more follow
    (``None``: this page ends the list)."""

    orders: tuple[OrderView, ...]
    next: OrderKey | None


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """A user's orders in numbers; all zero (and no ``last_order_at``) for a user with none."""

    user_id: str
    orders_placed: int
    orders_cancelled: int
    open_orders: int
    open_total: Decimal
    last_order_at: datetime | None


@dataclass(frozen=True, slots=True)
class ProjectionStop:
    """The event a projection cannot apply, and why: the projection stops before it."""

    event_id: UUID
    event_type: str
    error: str


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a projection stands, for a query waiting on it: the position of its checkpoint,
    and the event it is stopped at (``None``: it is not stopped). A stopped projection goes
    no further until an operator skips that event or a release applies it."""

    position: Position
    stopped_at: ProjectionStop | None = None


class ProjectionBehind(Exception):
    """A query asked for a position the projection had not reached within its wait, or
    that it cannot reach: it is stopped short of it (``stopped_at``; then answered at once).
    The message names the stopping event, not the reason (which may quote event data);
    that is for operators (``GET /api/projections``, ``cqrs-demo projections status``)."""

    def __init__(
        self,
        projection: str,
        wanted: Position,
        reached: Position,
        *,
        waited_ms: int,
        stopped_at: ProjectionStop | None = None,
    ) -> None:
        if stopped_at is None:
            message = (
                f"projection {projection!r} is at {reached}, behind the position {wanted}"
                f" asked for, after waiting {waited_ms} ms"
            )
        else:
            message = (
                f"projection {projection!r} is stopped at {reached}, behind the position"
                f" {wanted} asked for: it cannot apply event {stopped_at.event_id}"
                f" ({stopped_at.event_type}), and goes on once an operator skips that event"
                " or a release applies it (GET /api/projections says why)"
            )
        super().__init__(message)
        self.projection = projection
        self.wanted = wanted
        self.reached = reached
        self.stopped_at = stopped_at


class OrderNotProjected(Exception):
    """No order with this id in the read model at ``position``: none was placed, or the
    projection had not reached its event (a query with a ``min_position`` waits for it)."""

    def __init__(self, order_id: str, position: Position) -> None:
        super().__init__(
            f"order {printable(order_id)!r} is not in the orders read model at position {position}"
        )
        self.order_id = order_id
        self.position = position


class OrderQueries(Protocol):
    async def order(self, order_id: str) -> Projected[OrderView | None]:
        """One order (``None``: not in the read model); see ``PostgresOrderQueries``."""
        ...

    async def user_orders(
        self, user_id: str, *, status: str | None, after: OrderKey | None, limit: int
    ) -> Projected[OrderPage]:
        """A page of a user's orders, newest first; see ``PostgresOrderQueries``."""
        ...

    async def user_summary(self, user_id: str) -> Projected[OrderSummary]:
        """A user's summary, all zero without orders; see ``PostgresOrderQueries``."""
        ...

    async def wait_for(
        self, projection: str, position: Position, *, wait_seconds: float
    ) -> Standing:
        """Where the projection stands once at or past ``position``, or stopped short of it,
        or when ``wait_seconds`` passed; see ``PostgresOrderQueries``."""

    async def projections(self) -> "list[ProjectionStatus]":
        """Every projection's status; see ``PostgresOrderQueries``."""
        ...


# The projector's side: where a projection is, its rows, and the lock that makes it the one.


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a projection is: the feed position of the last event it applied (or skipped),
    how many it applied, and its state: ``running``, or ``stopped`` at the event
    ``failed_event_id`` for ``error``, until an operator skips that event."""

    position: Position
    events_applied: int
    state: str
    error: str | None = None
    failed_event_id: UUID | None = None
    failed_event_type: str | None = None
    generation: int = 0  # one up with each rebuild swapped in


class RowsExist(Exception):
    """A batch's commit found a row it inserted as new there already; nothing was written."""


class ReadModels(Protocol):
    async def checkpoint(self, projection: str) -> Checkpoint:
        """The projection's checkpoint; see ``PostgresReadModels``."""
        ...

    async def retry(self, projection: str) -> bool:
        """Set a stopped projection running again; see ``PostgresReadModels``."""
        ...

    async def checkpoint_if_any(self, projection: str) -> Checkpoint | None:
        """The projection's checkpoint, not created if missing; see ``PostgresReadModels``."""
        ...

    async def load_rows(self, keys: Collection[RowKey]) -> dict[RowKey, ReadRow | None]:
        """The read-model rows of ``keys``; see ``PostgresReadModels``."""
        ...

    async def commit(
        self,
        projection: str,
        *,
        after: Checkpoint,
        rows: Mapping[RowKey, ReadRow | None],
        existing: Collection[RowKey],
        to: Position,
        applied: int,
        stop: ProjectionStop | None,
    ) -> bool:
        """Write ``rows`` (those of ``existing`` keys were there before the batch: updated;
        the others inserted) and move the checkpoint in one transaction; see
        ``PostgresReadModels``. Raises ``RowsExist`` if a row inserted was there."""
        ...


class ProjectionLock(Protocol):
    async def still_held(self) -> bool:
        """Whether the lock's session is still alive (the lock with it)."""
        ...


class ProjectionLocks(Protocol):
    def hold(self, projection: str) -> AbstractAsyncContextManager[ProjectionLock]:
        """Wait until this process is the one projector of ``projection``; see
        ``PostgresProjectionLocks``."""
        ...


class Rebuild(Protocol):
    """A projection's rebuild: its tables built afresh beside the live ones, swapped in."""

    @property
    def name(self) -> str:
        """Its checkpoint's name."""
        ...

    @property
    def read_models(self) -> ReadModels:
        """The rebuild's tables and checkpoint."""
        ...

    async def start(self, *, afresh: bool) -> Checkpoint:
        """The checkpoint to resume, or a new one on empty tables; see ``PostgresRebuild``."""
        ...

    async def skip_as_live(self) -> bool:
        """Skip the event it stopped at if the projection skipped it; see ``PostgresRebuild``."""
        ...

    async def remaining(self, after: Position) -> int:
        """How many events there are after ``after``."""
        ...

    async def swap(self) -> Checkpoint:
        """Swap the rebuilt tables in, in one transaction; see ``PostgresRebuild``."""
        ...


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """A projection as ``cqrs-demo projections status`` and ``GET /api/projections`` show
    it: its checkpoint, the feed's head, and how far behind the head it is."""

    projection: str
    checkpoint: Checkpoint
    head: Position
    events_behind: int
    seconds_behind: float


class Wakeups(Protocol):
    """The projections' wake-ups, as the listener serves them: ``wake`` wakes every
    projection; ``wanted`` says whether one of them waits for wake-ups now (a projection
    reading on a timer, when busy, does not); ``until_wanted`` returns once one does, or
    after ``seconds``."""

    def wake(self) -> None: ...

    def wanted(self) -> bool: ...

    async def until_wanted(self, seconds: float) -> None: ...
