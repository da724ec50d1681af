"""Projections: pure functions from (read-model rows, event) to the rows the event changes.

A projection keeps some rows of the read side up to date with the events. For each event it
names the rows it needs (``keys``), and ``apply`` turns those rows (``None`` for a row that
does not exist) and the event into the rows the event changes (``None``: delete the row).
The process around it (``cqrs_demo.projector``) owns the feed, the checkpoint transaction
and the lock; ``fold_batch`` is what it runs on a batch. Nothing here does I/O.

An event a projection cannot apply (a cancel of an order it never saw placed, an order
placed twice) raises ``UnreadableEvent``: the projection stops there, for an operator.

Streams whose id starts with ``VERIFICATION_PREFIX`` are the deployment's own checks
(``ansible/roles/cqrs_demo/tasks/verify.yml`` appends to a new one on every run, proving a
real append): every projection passes over their events, needing no row and changing none,
so no read model ever shows them.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Literal, NoReturn

from cqrs_demo.domain.errors import UnreadableEvent
from cqrs_demo.domain.orders import OrderCancelled, OrderCreated, OrderEvent

VERIFICATION_PREFIX = "cqrs-verify:"
"""Reserved: the streams (user ids) of the deployment's verification; see the docstring."""

# Which row: the read model's table (its short name) and the row's key in it.
Table = Literal["order", "user_summary", "open_order"]
RowKey = tuple[Table, str]


@dataclass(frozen=True, slots=True)
class OrderRow:
    """One row of ``orders``: an order as its events left it."""

    order_id: str
    user_id: str
    product_id: str
    quantity: int
    total_price: Decimal
    status: Literal["placed", "cancelled"]
    placed_at: datetime
    cancelled_at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class UserSummary:
    """One row of ``user_order_summaries``: what a user ordered, in counts and money."""

    user_id: str
    orders_placed: int
    orders_cancelled: int
    open_orders: int
    open_total: Decimal
    last_order_at: datetime | None


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An order still open, as the summaries need it: a cancel does not carry the price,
    so the summaries keep the price of every open order until it is cancelled."""

    order_id: str
    user_id: str
    total_price: Decimal


ReadRow = OrderRow | UserSummary | OpenOrder
Rows = Mapping[RowKey, ReadRow | None]


@dataclass(frozen=True, slots=True)
class Projection:
    """A named projection: the rows an event needs, the pure function that applies it, and
    the rows among those the event brings into being (``creates``: ``apply`` refuses the
    event if one of them is there already; see ``batch_keys``)."""

    name: str
    keys: Callable[[OrderEvent], tuple[RowKey, ...]]
    apply: Callable[[Rows, OrderEvent], dict[RowKey, ReadRow | None]]
    creates: Callable[[OrderEvent], tuple[RowKey, ...]] = lambda event: ()


@dataclass(frozen=True, slots=True)
class BatchKeys:
    """The rows a batch needs: those to load, and those taken to be absent unloaded."""

    load: frozenset[RowKey]
    assumed_absent: frozenset[RowKey]


def batch_keys(projection: Projection, events: Iterable[OrderEvent]) -> BatchKeys:
    """The rows ``events`` need, split: a row that the first event naming it creates is
    assumed absent (not loaded), every other is loaded. A new order's rows are new by
    construction (order ids are made for them), so a batch of new orders loads only what
    it changes; if one is there after all (data written around the API), the store refuses
    to insert it, and the caller folds the batch again with every row loaded
    (``load_every_row``), which refuses the event as ``apply`` does."""
    seen: set[RowKey] = set()
    assumed: set[RowKey] = set()
    for event in events:
        created = projection.creates(event)
        for key in projection.keys(event):
            if key not in seen:
                seen.add(key)
                if key in created:
                    assumed.add(key)
    return BatchKeys(frozenset(seen - assumed), frozenset(assumed))


def load_every_row(projection: Projection, events: Iterable[OrderEvent]) -> BatchKeys:
    """Every row ``events`` need, to be loaded (none assumed absent)."""
    keys = {key for event in events for key in projection.keys(event)}
    return BatchKeys(frozenset(keys), frozenset())


def is_verification(event: OrderEvent) -> bool:
    """Whether ``event`` is on a verification stream, which no projection shows."""
    return event.user_id.startswith(VERIFICATION_PREFIX)


def _business_projection(
    name: str,
    keys: Callable[[OrderEvent], tuple[RowKey, ...]],
    apply: Callable[[Rows, OrderEvent], dict[RowKey, ReadRow | None]],
    creates: Callable[[OrderEvent], tuple[RowKey, ...]],
) -> Projection:
    """A projection of ``keys``, ``apply`` and ``creates`` that passes over verification
    events."""

    def business_keys(event: OrderEvent) -> tuple[RowKey, ...]:
        return () if is_verification(event) else keys(event)

    def business_apply(rows: Rows, event: OrderEvent) -> dict[RowKey, ReadRow | None]:
        return {} if is_verification(event) else apply(rows, event)

    def business_creates(event: OrderEvent) -> tuple[RowKey, ...]:
        return () if is_verification(event) else creates(event)

    return Projection(name, business_keys, business_apply, business_creates)


def fold_batch(projection: Projection, rows: Rows, events: Iterable[OrderEvent]) -> Rows:
    """The rows that ``events``, applied in order to ``rows`` (every row any of them needs,
    ``None`` where there is none), change, as they are after the last event. Raises the
    error (``UnreadableEvent``, or any other) of the first event that cannot be applied."""
    changed, failure = fold_until(projection, rows, events)
    if failure is not None:
        raise failure[1]
    return changed


def fold_until(
    projection: Projection, rows: Rows, events: Iterable[OrderEvent]
) -> tuple[dict[RowKey, ReadRow | None], tuple[int, Exception] | None]:
    """As ``fold_batch``, but stopping at the first event that cannot be applied: the rows
    changed by the events before it, and that event's index and error (``None`` when every
    event applied). Any exception of the projection's function counts as that event's."""
    current = dict(rows)
    changed: dict[RowKey, ReadRow | None] = {}
    for index, event in enumerate(events):
        try:
            after = projection.apply(current, event)
        except Exception as error:  # a bug stops the projection at this event, as bad data does
            return changed, (index, error)
        current.update(after)
        changed.update(after)
    return changed, None


# orders


def _order_keys(event: OrderEvent) -> tuple[RowKey, ...]:
    return (("order", event.order_id),)


def _apply_to_order(rows: Rows, event: OrderEvent) -> dict[RowKey, ReadRow | None]:
    key: RowKey = ("order", event.order_id)
    order = rows.get(key)
    assert order is None or isinstance(order, OrderRow)
    match event:
        case OrderCreated():
            if order is not None:
                _refuse(event, f"places order {event.order_id}, which was placed before")
            return {key: _placed(event)}
        case OrderCancelled():
            if order is None:
                _refuse(event, f"cancels order {event.order_id}, which was never placed")
            if order.status == "cancelled":
                _refuse(event, f"cancels order {event.order_id}, which was cancelled before")
            cancelled = replace(
                order, status="cancelled", cancelled_at=event.occurred_on, reason=event.reason
            )
            return {key: cancelled}


def _placed(event: OrderCreated) -> OrderRow:
    return OrderRow(
        event.order_id,
        event.user_id,
        event.product_id,
        event.quantity,
        event.total_price,
        "placed",
        event.occurred_on,
    )


def _order_creates(event: OrderEvent) -> tuple[RowKey, ...]:
    return (("order", event.order_id),) if isinstance(event, OrderCreated) else ()


ORDERS = _business_projection("orders", _order_keys, _apply_to_order, _order_creates)


# user_order_summaries


def _summary_keys(event: OrderEvent) -> tuple[RowKey, ...]:
    return (("user_summary", event.user_id), ("open_order", event.order_id))


def _apply_to_summary(rows: Rows, event: OrderEvent) -> dict[RowKey, ReadRow | None]:
    user_key: RowKey = ("user_summary", event.user_id)
    order_key: RowKey = ("open_order", event.order_id)
    summary = rows.get(user_key)
    assert summary is None or isinstance(summary, UserSummary)
    summary = summary or UserSummary(event.user_id, 0, 0, 0, Decimal(0), None)
    open_order = rows.get(order_key)
    match event:
        case OrderCreated():
            if open_order is not None:
                _refuse(event, f"places order {event.order_id}, which is open already")
            last = summary.last_order_at
            placed = replace(
                summary,
                orders_placed=summary.orders_placed + 1,
                open_orders=summary.open_orders + 1,
                open_total=summary.open_total + event.total_price,
                last_order_at=event.occurred_on if last is None else max(last, event.occurred_on),
            )
            return {user_key: placed, order_key: _open(event)}
        case OrderCancelled():
            if not isinstance(open_order, OpenOrder) or open_order.user_id != event.user_id:
                _refuse(event, f"cancels order {event.order_id}, which is not an open order")
            cancelled = replace(
                summary,
                orders_cancelled=summary.orders_cancelled + 1,
                open_orders=summary.open_orders - 1,
                open_total=summary.open_total - open_order.total_price,
            )
            return {user_key: cancelled, order_key: None}


def _open(event: OrderCreated) -> OpenOrder:
    return OpenOrder(event.order_id, event.user_id, event.total_price)


def _summary_creates(event: OrderEvent) -> tuple[RowKey, ...]:
    return (("open_order", event.order_id),) if isinstance(event, OrderCreated) else ()


USER_ORDER_SUMMARIES = _business_projection(
    "user_order_summaries", _summary_keys, _apply_to_summary, _summary_creates
)

PROJECTIONS: Mapping[str, Projection] = {
    projection.name: projection for projection in (ORDERS, USER_ORDER_SUMMARIES)
}


def _refuse(event: OrderEvent, reason: str) -> NoReturn:
    raise UnreadableEvent(event.event_id, event.event_type, reason)
