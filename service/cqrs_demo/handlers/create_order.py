"""Placing an order: one ``OrderCreated`` on the user's stream, without reading it."""

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from cqrs_demo.domain import orders
from cqrs_demo.domain.ids import uuid7
from cqrs_demo.handlers.append import Accepted, CommandContext, append, envelope, utc_now
from cqrs_demo.ports import EventStore


async def handle_create_order(
    command: orders.CreateOrder,
    store: EventStore,
    context: CommandContext,
    *,
    clock: Callable[[], datetime] = utc_now,
    new_id: Callable[[], UUID] = uuid7,
) -> Accepted:
    """Place an order. Its ``result`` is the new order's id. With an idempotency key in
    ``context``, a repeat of the same command gets the first one's order, version and
    event ids, and nothing new is stored."""
    events = orders.create_order(command, now=clock(), new_id=new_id)
    return await append(
        store,
        command.stream,
        events,
        envelope(command, context),
        expected_version=command.expected_version,
        result={"order_id": events[0].order_id},
    )
