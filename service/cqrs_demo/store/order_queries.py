"""The read models the projector keeps, read with the position of their projection.

Every read is one statement that returns the rows and the projection's checkpoint
together (``queries/read_*.sql``): one snapshot, so what a query answers is exactly the
read model at the position it reports. The projector writes rows and checkpoint in one
transaction (``migrations/0007_read_models.sql``).
"""

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from cqrs_demo.domain.projections import PROJECTIONS
from cqrs_demo.ports import (
    ORDERS_PROJECTION,
    START,
    SUMMARIES_PROJECTION,
    OrderKey,
    OrderPage,
    OrderSummary,
    OrderView,
    Position,
    Projected,
    ProjectionStatus,
)
from cqrs_demo.store.pool import Database
from cqrs_demo.store.position_watch import PositionWatch
from cqrs_demo.store.projections import PostgresReadModels
from cqrs_demo.store.sql import query

Row = tuple[object, ...]


class PostgresOrderQueries:
    """The ``orders`` and ``user_order_summaries`` tables and their projections'
    checkpoints. A projection that never ran is at ``ports.START`` with nothing in it.

    Every method raises ``StoreUnavailable`` or ``StoreError`` (``Database``)."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._watch = PositionWatch(self.position)

    async def order(self, order_id: str) -> Projected[OrderView | None]:
        """The order ``order_id`` (``None``: not in the read model) and the position of
        the ``orders`` projection, in one snapshot."""
        (row,) = await self._rows(
            "read_order", {"projection": ORDERS_PROJECTION, "order_id": order_id}
        )
        view = None if row[2] is None else _order_view(row[2:])
        return Projected(view, _position(row))

    async def user_orders(
        self, user_id: str, *, status: str | None, after: OrderKey | None, limit: int
    ) -> Projected[OrderPage]:
        """Up to ``limit`` orders of ``user_id`` (only those in ``status``, if given), newest
        first by (placed_at, order_id), starting after the key ``after`` (``None``: from the
        newest); and the position of the ``orders`` projection, in one snapshot. The page's
        ``next`` is its last order's key when more orders follow."""
        params = {
            "projection": ORDERS_PROJECTION,
            "user_id": user_id,
            "status": status,
            "after_placed_at": None if after is None else after.placed_at,
            "after_order_id": None if after is None else after.order_id,
            "fetch": limit + 1,
        }
        name = "read_user_orders" if status is None else "read_user_orders_with_status"
        rows = await self._rows(name, params)
        orders = tuple(_order_view(row[2:]) for row in rows if row[2] is not None)
        page = orders[:limit]
        following = OrderKey(page[-1].placed_at, page[-1].order_id) if len(orders) > limit else None
        return Projected(OrderPage(page, following), _position(rows[0]))

    async def user_summary(self, user_id: str) -> Projected[OrderSummary]:
        """The summary of ``user_id`` (all zero when the read model has no order of theirs)
        and the position of the ``user_order_summaries`` projection, in one snapshot."""
        (row,) = await self._rows(
            "read_user_summary", {"projection": SUMMARIES_PROJECTION, "user_id": user_id}
        )
        if row[2] is None:
            summary = OrderSummary(user_id, 0, 0, 0, Decimal(0), None)
        else:
            placed, cancelled, open_orders, open_total, last_order_at = row[2:]
            assert isinstance(placed, int)
            assert isinstance(cancelled, int)
            assert isinstance(open_orders, int)
            assert isinstance(open_total, Decimal)
            assert last_order_at is None or isinstance(last_order_at, datetime)
            summary = OrderSummary(
                user_id, placed, cancelled, open_orders, open_total, last_order_at
            )
        return Projected(summary, _position(row))

    async def position(self, projection: str) -> Position:
        """The checkpoint of ``projection``: the position of the last event it applied."""
        rows = await self._rows("projection_position", {"projection": projection})
        return _position(rows[0]) if rows else START

    async def wait_for(
        self, projection: str, position: Position, *, wait_seconds: float
    ) -> Position:
        """The position of ``projection`` once it is at or past ``position``, found within
        10 to 20 ms of the commit that moved it there; after ``wait_seconds``, the position
        it was last found at. Holds no connection while it waits (``PositionWatch``)."""
        return await self._watch.wait_for(projection, position, wait_seconds=wait_seconds)

    async def projections(self) -> list[ProjectionStatus]:
        """Each projection's checkpoint and how far behind the feed's head it is."""
        return await PostgresReadModels(self._database).status(list(PROJECTIONS))

    async def _rows(self, name: str, params: Mapping[str, object]) -> list[Row]:
        async with self._database.connection() as conn:
            cursor = await conn.execute(query(name), params)
            return await cursor.fetchall()


def _position(row: Row) -> Position:
    """The checkpoint in a row's first two columns; ``START`` when they are NULL."""
    transaction_id, event_number = row[0], row[1]
    if transaction_id is None:
        return START
    assert isinstance(transaction_id, str)
    assert isinstance(event_number, int)
    return Position(int(transaction_id), event_number)


def _order_view(columns: Row) -> OrderView:
    order_id, user_id, product_id, quantity, total_price, status, placed_at, cancelled, reason = (
        columns
    )
    assert isinstance(order_id, str)
    assert isinstance(user_id, str)
    assert isinstance(product_id, str)
    assert isinstance(quantity, int)
    assert isinstance(total_price, Decimal)
    assert isinstance(status, str)
    assert isinstance(placed_at, datetime)
    assert cancelled is None or isinstance(cancelled, datetime)
    assert reason is None or isinstance(reason, str)
    return OrderView(
        order_id, user_id, product_id, quantity, total_price, status, placed_at, cancelled, reason
    )
