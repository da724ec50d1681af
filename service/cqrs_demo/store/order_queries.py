"""The read models the projector keeps, read with the position of their projection.

Every read is one statement that returns the rows and the projection's checkpoint
together (``queries/read_*.sql``): one snapshot, so what a query answers is exactly the
read model at the position it reports. The projector writes rows and checkpoint in one
transaction (``migrations/0007_read_models.sql``).

The reads are every query's path, so they run on libpq directly (``prepared``), values as
text, as a command's append does: psycopg's cursor layer cost a query more CPU than the
server's part of it (``docs/performance.md``).
"""

import asyncio
import logging
from datetime import datetime
from decimal import Decimal
from uuid import UUID

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
    ProjectionStop,
    Standing,
)
from cqrs_demo.store.errors import RecoveryConflict
from cqrs_demo.store.pool import Database
from cqrs_demo.store.position_watch import PositionWatch
from cqrs_demo.store.prepared import PreparedStatement, positional
from cqrs_demo.store.projections import PostgresReadModels
from cqrs_demo.store.sql import query

Row = tuple[bytes | None, ...]
log = logging.getLogger("cqrs_demo.api")

# A read a standby cancelled for its replay (``RecoveryConflict``) is tried again after
# each of these pauses, then given up: the replay that conflicted has usually moved on
# within milliseconds, and a client waiting longer is better told to retry.
RECOVERY_CONFLICT_PAUSES = (0.02, 0.1)


def _statement(name: str, *parameters: str) -> PreparedStatement:
    """``queries/<name>.sql``, its parameters in the order ``run`` takes them."""
    return PreparedStatement(b"cqrs_" + name.encode(), positional(query(name), parameters))


_ORDERS = ORDERS_PROJECTION.encode()
_SUMMARIES = SUMMARIES_PROJECTION.encode()
_READ_ORDER = _statement("read_order", "projection", "order_id")
_READ_USER_SUMMARY = _statement("read_user_summary", "projection", "user_id")
_LISTING = ("projection", "user_id", "after_placed_at", "after_order_id", "fetch")
_READ_USER_ORDERS = _statement("read_user_orders", *_LISTING)
_READ_USER_ORDERS_WITH_STATUS = _statement("read_user_orders_with_status", *_LISTING, "status")
_PROJECTION_STANDING = _statement("projection_standing", "projection")


class PostgresOrderQueries:
    """The ``orders`` and ``user_order_summaries`` tables and their projections'
    checkpoints, read on ``database``; the projections' status (``projections``) on
    ``projector_database`` (default: ``database``). A projection that never ran is at
    ``ports.START`` with nothing in it.

    ``database`` may be a standby (``CQRS_READ_DATABASE_URL``): a read model and its
    checkpoint are replicated in the one transaction the projector wrote them in, so what a
    standby answers is exactly the read model at the position it reports, however far its
    replay is behind; ``wait_for`` reads the checkpoint on the standby too, so it waits for
    the read model the queries will answer from. (LISTEN cannot run on a standby: the wait
    polls, ``PositionWatch``.) The status is the projector's own work, read where it writes
    (the primary), not a standby's replay of it.

    A read that a standby cancels for its replay is tried again, twice, within about a
    tenth of a second (``RECOVERY_CONFLICT_PAUSES``), then raises ``RecoveryConflict``.
    Every method raises ``StoreUnavailable`` or ``StoreError`` (``Database``)."""

    def __init__(self, database: Database, *, projector_database: Database | None = None) -> None:
        self._database = database
        self._projector_database = projector_database or database
        self._watch = PositionWatch(self.standing)

    async def order(self, order_id: str) -> Projected[OrderView | None]:
        """The order ``order_id`` (``None``: not in the read model) and the position of
        the ``orders`` projection, in one snapshot."""
        (row,) = await self._run(_READ_ORDER, _ORDERS, order_id.encode())
        view = None if row[2] is None else _order_view(row[2:])
        return Projected(view, _position(row))

    async def user_orders(
        self, user_id: str, *, status: str | None, after: OrderKey | None, limit: int
    ) -> Projected[OrderPage]:
        """Up to ``limit`` orders of ``user_id`` (only those in ``status``, if given), newest
        first by (placed_at, order_id), starting after the key ``after`` (``None``: from the
        newest); and the position of the ``orders`` projection, in one snapshot. The page's
        ``next`` is its last order's key when more orders follow."""
        params = [
            _ORDERS,
            user_id.encode(),
            None if after is None else after.placed_at.isoformat().encode(),
            None if after is None else after.order_id.encode(),
            b"%d" % (limit + 1),
        ]
        if status is None:
            rows = await self._run(_READ_USER_ORDERS, *params)
        else:
            rows = await self._run(_READ_USER_ORDERS_WITH_STATUS, *params, status.encode())
        orders = tuple(_order_view(row[2:]) for row in rows if row[2] is not None)
        page = orders[:limit]
        following = OrderKey(page[-1].placed_at, page[-1].order_id) if len(orders) > limit else None
        return Projected(OrderPage(page, following), _position(rows[0]))

    async def user_summary(self, user_id: str) -> Projected[OrderSummary]:
        """The summary of ``user_id`` (all zero when the read model has no order of theirs)
        and the position of the ``user_order_summaries`` projection, in one snapshot."""
        (row,) = await self._run(_READ_USER_SUMMARY, _SUMMARIES, user_id.encode())
        if row[2] is None:
            summary = OrderSummary(user_id, 0, 0, 0, Decimal(0), None)
        else:
            placed, cancelled, open_orders, open_total, last_order_at = row[2:]
            assert placed is not None
            assert cancelled is not None
            assert open_orders is not None
            assert open_total is not None
            summary = OrderSummary(
                user_id,
                int(placed),
                int(cancelled),
                int(open_orders),
                Decimal(open_total.decode()),
                _timestamp(last_order_at),
            )
        return Projected(summary, _position(row))

    async def standing(self, projection: str) -> Standing:
        """Where ``projection`` stands: the position of the last event it applied, and the
        event it is stopped at, if it is."""
        rows = await self._run(_PROJECTION_STANDING, projection.encode())
        if not rows:
            return Standing(START)
        position = _position(rows[0])
        event_id, event_type, error = rows[0][2:]
        if event_id is None:
            return Standing(position)
        assert event_type is not None
        assert error is not None
        stop = ProjectionStop(UUID(event_id.decode()), event_type.decode(), error.decode())
        return Standing(position, stop)

    async def wait_for(
        self, projection: str, position: Position, *, wait_seconds: float
    ) -> Standing:
        """Where ``projection`` stands once it is at or past ``position`` (found within 10
        to 20 ms of the commit that moved it there), or stopped short of it (found as
        soon); after ``wait_seconds``, where it was last found. Holds no connection while
        it waits (``PositionWatch``)."""
        return await self._watch.wait_for(projection, position, wait_seconds=wait_seconds)

    async def projections(self) -> list[ProjectionStatus]:
        """Each projection's checkpoint and how far behind the feed's head it is."""
        return await PostgresReadModels(self._projector_database).status(list(PROJECTIONS))

    async def _run(self, statement: PreparedStatement, *params: bytes | None) -> list[Row]:
        for pause in RECOVERY_CONFLICT_PAUSES:
            try:
                return await self._run_once(statement, params)
            except RecoveryConflict as conflict:
                log.info("%s; trying the read again in %.0f ms", conflict, pause * 1000)
                await asyncio.sleep(pause)
        return await self._run_once(statement, params)

    async def _run_once(
        self, statement: PreparedStatement, params: tuple[bytes | None, ...]
    ) -> list[Row]:
        async with self._database.connection() as conn:
            return await statement.run(conn, params)


def _position(row: Row) -> Position:
    """The checkpoint in a text row's first two columns; ``START`` when they are NULL."""
    transaction_id, event_number = row[0], row[1]
    if transaction_id is None:
        return START
    assert event_number is not None
    return Position(int(transaction_id), int(event_number))


def _order_view(columns: Row) -> OrderView:
    order_id, user_id, product_id, quantity, total_price, status, placed_at, cancelled, reason = (
        columns
    )
    assert order_id is not None
    assert user_id is not None
    assert product_id is not None
    assert quantity is not None
    assert total_price is not None
    assert status is not None
    placed = _timestamp(placed_at)
    assert placed is not None
    return OrderView(
        order_id.decode(),
        user_id.decode(),
        product_id.decode(),
        int(quantity),
        Decimal(total_price.decode()),
        status.decode(),
        placed,
        _timestamp(cancelled),
        None if reason is None else reason.decode(),
    )


def _timestamp(text: bytes | None) -> datetime | None:
    """A timestamp as the session writes it (ISO 8601 with its offset: ``Database`` sets
    the DateStyle of every connection)."""
    return None if text is None else datetime.fromisoformat(text.decode())
