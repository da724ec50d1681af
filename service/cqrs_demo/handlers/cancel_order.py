"""Cancelling an order: decided on the user's orders as their stream holds them."""

from collections.abc import Callable
from datetime import datetime
from functools import partial
from uuid import UUID

from cqrs_demo.domain import orders
from cqrs_demo.domain.ids import uuid7
from cqrs_demo.handlers.append import Accepted, CommandContext, utc_now
from cqrs_demo.handlers.history import decide_from_history
from cqrs_demo.ports import EventStore


async def handle_cancel_order(
    command: orders.CancelOrder,
    store: EventStore,
    context: CommandContext,
    *,
    clock: Callable[[], datetime] = utc_now,
    new_id: Callable[[], UUID] = uuid7,
) -> Accepted:
    """Cancel an order: one ``OrderCancelled``; its ``result`` is the order's id. Refused
    with ``OrderNotFound`` or ``OrderAlreadyCancelled`` (see ``orders.cancel_order``);
    retried on a racing append as ``decide_from_history`` says."""
    decide = partial(orders.cancel_order, command=command, now=clock(), new_id=new_id)
    return await decide_from_history(
        store, command, context, decide, result={"order_id": command.order_id}
    )
