"""Orders: the commands on a user's orders, the events they cause, the state those events
fold into, and the decisions. Pure: no I/O, no clock, no randomness of its own.

A user's orders are one stream (keyed by the user id). ``evolve`` folds the stream's
events into ``UserOrders``; each decision takes the command (and, when its rules depend on
the past, the state) and returns the events, or raises a refusal from ``errors``.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from cqrs_demo.domain import fields
from cqrs_demo.domain.errors import OrderAlreadyCancelled, OrderNotFound, UnreadableEvent
from cqrs_demo.domain.events import (
    StoredForm,
    decimal_field,
    integer_field,
    optional_text_field,
    text_field,
)

# Commands


@dataclass(frozen=True, slots=True)
class CreateOrder:
    """Place an order for ``quantity`` of ``product_id`` on behalf of ``user_id``.

    ``expected_version`` is the version the user's stream must be at (0: no orders yet);
    ``None`` appends after whatever the stream holds when the command is handled.
    ``timestamp`` is the client's own time for the command, kept in the event's metadata.
    """

    user_id: str
    product_id: str
    quantity: int
    total_price: Decimal
    timestamp: datetime | None = None
    expected_version: int | None = None

    RULES: ClassVar[Mapping[str, fields.Rule]] = {
        "user_id": fields.IDENTIFIER,
        "product_id": fields.IDENTIFIER,
        "quantity": fields.QUANTITY,
        "total_price": fields.TOTAL_PRICE,
        "timestamp": fields.TIMESTAMP,
        "expected_version": fields.EXPECTED_VERSION,
    }

    @property
    def stream(self) -> str:
        return self.user_id


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel ``order_id``, one of ``user_id``'s orders, optionally saying why.

    ``expected_version`` and ``timestamp`` as for ``CreateOrder``; without an expected
    version, the decision is made on the stream as it is when the command is handled.
    """

    user_id: str
    order_id: str
    reason: str | None = None
    timestamp: datetime | None = None
    expected_version: int | None = None

    RULES: ClassVar[Mapping[str, fields.Rule]] = {
        "user_id": fields.IDENTIFIER,
        "order_id": fields.IDENTIFIER,
        "reason": fields.OPTIONAL_TEXT,
        "timestamp": fields.TIMESTAMP,
        "expected_version": fields.EXPECTED_VERSION,
    }

    @property
    def stream(self) -> str:
        return self.user_id


# Events


@dataclass(frozen=True, slots=True)
class OrderCreated:
    """A user placed an order. ``order_id`` is a UUIDv7: unique everywhere, time-ordered."""

    event_type: ClassVar[str] = "OrderCreated"

    event_id: UUID
    order_id: str
    user_id: str
    product_id: str
    quantity: int
    total_price: Decimal
    occurred_on: datetime

    def payload(self) -> dict[str, object]:
        return {
            "event_type": self.event_type,
            "order_id": self.order_id,
            "user_id": self.user_id,
            "product_id": self.product_id,
            "quantity": self.quantity,
            "total_price": self.total_price,
            "occurred_on": self.occurred_on.isoformat(),
        }

    @classmethod
    def from_payload(
        cls, event_id: UUID, occurred_on: datetime, payload: Mapping[str, object]
    ) -> "OrderCreated":
        return cls(
            event_id=event_id,
            order_id=text_field(payload, "order_id"),
            user_id=text_field(payload, "user_id"),
            product_id=text_field(payload, "product_id"),
            quantity=integer_field(payload, "quantity"),
            total_price=decimal_field(payload, "total_price"),
            occurred_on=occurred_on,
        )


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    """A user's order was cancelled, at ``occurred_on``, for ``reason`` if one was given."""

    event_type: ClassVar[str] = "OrderCancelled"

    event_id: UUID
    order_id: str
    user_id: str
    reason: str | None
    occurred_on: datetime

    def payload(self) -> dict[str, object]:
        return {
            "event_type": self.event_type,
            "order_id": self.order_id,
            "user_id": self.user_id,
            "reason": self.reason,
            "cancelled_on": self.occurred_on.isoformat(),
        }

    @classmethod
    def from_payload(
        cls, event_id: UUID, occurred_on: datetime, payload: Mapping[str, object]
    ) -> "OrderCancelled":
        return cls(
            event_id=event_id,
            order_id=text_field(payload, "order_id"),
            user_id=text_field(payload, "user_id"),
            reason=optional_text_field(payload, "reason"),
            occurred_on=occurred_on,
        )


OrderEvent = OrderCreated | OrderCancelled
# Every event of a user's stream, by its stored event_type (see events.decode_event).
EVENT_TYPES: Mapping[str, StoredForm[OrderEvent]] = {
    event.event_type: event for event in (OrderCreated, OrderCancelled)
}


# State


@dataclass(frozen=True, slots=True)
class Order:
    """One order as its events left it."""

    order_id: str
    product_id: str
    quantity: int
    total_price: Decimal
    placed_on: datetime
    cancelled_on: datetime | None = None


@dataclass(frozen=True, slots=True)
class UserOrders:
    """A user's orders by id, as of the stream's ``version``."""

    orders: Mapping[str, Order] = field(default_factory=dict)
    version: int = 0


def evolve(state: UserOrders, event: OrderEvent) -> UserOrders:
    """The state after ``event``, the stream's next event."""
    order = _order_after(state.orders.get(event.order_id), event)
    return UserOrders({**state.orders, event.order_id: order}, state.version + 1)


def fold(events: Iterable[OrderEvent]) -> UserOrders:
    """The state of a stream that holds ``events``, oldest first: ``evolve`` applied to
    each in turn, without copying the orders at every event (a stream of N events would
    cost N² otherwise)."""
    orders: dict[str, Order] = {}
    version = 0
    for event in events:
        orders[event.order_id] = _order_after(orders.get(event.order_id), event)
        version += 1
    return UserOrders(orders, version)


def _order_after(order: Order | None, event: OrderEvent) -> Order:
    """The order ``event`` is about, after it (``None``: not placed before)."""
    match event:
        case OrderCreated():
            return Order(
                event.order_id,
                event.product_id,
                event.quantity,
                event.total_price,
                placed_on=event.occurred_on,
            )
        case OrderCancelled():
            if order is None:
                reason = f"cancels order {event.order_id}, which the stream never placed"
                raise UnreadableEvent(event.event_id, event.event_type, reason)
            return replace(order, cancelled_on=event.occurred_on)


# Decisions


def create_order(
    command: CreateOrder, *, now: datetime, new_id: Callable[[], UUID]
) -> list[OrderCreated]:
    """Placing an order: exactly one ``OrderCreated``. No rule depends on the user's earlier
    orders, so the stream's history is not needed (nor read)."""
    return [
        OrderCreated(
            event_id=new_id(),
            order_id=str(new_id()),
            user_id=command.user_id,
            product_id=command.product_id,
            quantity=command.quantity,
            total_price=command.total_price,
            occurred_on=now,
        )
    ]


def cancel_order(
    state: UserOrders, command: CancelOrder, *, now: datetime, new_id: Callable[[], UUID]
) -> list[OrderCancelled]:
    """Cancelling an order: one ``OrderCancelled``. Refuses an order not in this user's
    stream (``OrderNotFound``) and one already cancelled (``OrderAlreadyCancelled``)."""
    order = state.orders.get(command.order_id)
    if order is None:
        raise OrderNotFound(command.order_id, command.user_id)
    if order.cancelled_on is not None:
        raise OrderAlreadyCancelled(command.order_id, order.cancelled_on)
    return [
        OrderCancelled(
            event_id=new_id(),
            order_id=command.order_id,
            user_id=command.user_id,
            reason=command.reason,
            occurred_on=now,
        )
    ]
