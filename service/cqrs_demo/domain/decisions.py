"""Decisions: pure functions from a command (and the time) to the events it causes."""

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from cqrs_demo.domain.commands import CreateOrder
from cqrs_demo.domain.events import OrderCreated


def create_order(
    command: CreateOrder, *, now: datetime, new_id: Callable[[], UUID]
) -> list[OrderCreated]:
    """Decide the events of placing an order: exactly one ``OrderCreated``.

    The command is already valid (see ``parse_create_order``); placing an order has no rule
    that depends on the user's earlier orders, so the stream's history is not read.
    """
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
