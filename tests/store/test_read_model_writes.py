"""A batch's rows are written as what they are: rows new to a table inserted, rows it had
updated, and a row said to be new that is there already refuses the whole batch (checkpoint
included) instead of overwriting it."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cqrs_demo.domain.projections import OpenOrder, OrderRow, ReadRow, RowKey, UserSummary
from cqrs_demo.ports import Checkpoint, Position, RowsExist
from cqrs_demo.store.pool import Database
from cqrs_demo.store.projections import PostgresReadModels

pytestmark = pytest.mark.anyio

AT = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
PLACED = OrderRow("w-order", "w-user", "p", 2, Decimal("19.990"), "placed", AT)
CANCELLED = OrderRow("w-order", "w-user", "p", 2, Decimal("19.990"), "cancelled", AT, AT, "why")
SUMMARY = UserSummary("w-user", 1, 0, 1, Decimal("19.990"), AT)
AFTER_CANCEL = UserSummary("w-user", 1, 1, 0, Decimal("0.000"), AT)


@pytest.fixture
async def models(fresh_database_url: str) -> AsyncIterator[PostgresReadModels]:
    """The read models of a database of the test's own, through a one-connection pool."""
    database = Database(fresh_database_url, min_size=1, max_size=1, timeout=5)
    await database.open(wait_seconds=10)
    yield PostgresReadModels(database)
    await database.close()


async def test_new_rows_are_inserted_and_rows_there_updated(models: PostgresReadModels) -> None:
    start = await models.checkpoint("w")
    first = Position(1, 1)
    placed: dict[RowKey, ReadRow | None] = {
        ("order", "w-order"): PLACED,
        ("user_summary", "w-user"): SUMMARY,
        ("open_order", "w-order"): OpenOrder("w-order", "w-user", Decimal("19.990")),
    }
    assert await models.commit(
        "w", after=start, rows=placed, existing=(), to=first, applied=1, stop=None
    )
    cancelled: dict[RowKey, ReadRow | None] = {
        ("order", "w-order"): CANCELLED,
        ("user_summary", "w-user"): AFTER_CANCEL,
        ("open_order", "w-order"): None,
    }
    moved = Checkpoint(first, 1, "running", generation=start.generation)
    assert await models.commit(
        "w",
        after=moved,
        rows=cancelled,
        existing=set(cancelled),
        to=Position(1, 2),
        applied=1,
        stop=None,
    )
    assert await models.load_rows(list(cancelled)) == {**cancelled}


async def test_a_new_row_that_is_there_already_refuses_the_batch(
    models: PostgresReadModels,
) -> None:
    start = await models.checkpoint("w")
    rows: dict[RowKey, ReadRow | None] = {("order", "w-order"): PLACED}
    assert await models.commit(
        "w", after=start, rows=rows, existing=(), to=Position(1, 1), applied=1, stop=None
    )
    moved = await models.checkpoint("w")
    again: dict[RowKey, ReadRow | None] = {
        ("order", "w-order"): CANCELLED,
        ("user_summary", "w-user"): SUMMARY,
    }
    with pytest.raises(RowsExist, match=r"there already .*UniqueViolation"):
        await models.commit(
            "w", after=moved, rows=again, existing=(), to=Position(1, 2), applied=1, stop=None
        )
    assert await models.checkpoint("w") == moved
    assert await models.load_rows(list(again)) == {
        ("order", "w-order"): PLACED,
        ("user_summary", "w-user"): None,
    }
