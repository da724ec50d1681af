"""Domain events: facts that happened, immutable, serialised with their ``event_type``."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar, Protocol
from uuid import UUID


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
