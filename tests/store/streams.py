"""What the store tests write and read back: fresh streams, orders, the rows of a stream."""

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

import psycopg

from cqrs_demo.domain.ids import uuid7
from cqrs_demo.domain.orders import OrderCreated
from cqrs_demo.ports import Position

_streams = itertools.count(1)


def new_stream() -> str:
    """A stream name no other test uses (they share the session's database)."""
    return f"store-test-{uuid7().hex}-{next(_streams)}"


def order(user: str, price: str = "150.00") -> OrderCreated:
    return OrderCreated(
        event_id=uuid7(),
        order_id=str(uuid7()),
        user_id=user,
        product_id="prod_456",
        quantity=2,
        total_price=Decimal(price),
        occurred_on=datetime.now(UTC),
    )


@dataclass(frozen=True)
class BareEvent:
    """An event whose payload names no stream: what it is written to is only the stream."""

    event_type: ClassVar[str] = "Bare"
    event_id: UUID
    occurred_on: datetime

    def payload(self) -> dict[str, object]:
        return {"event_type": self.event_type}


@dataclass(frozen=True)
class OddEvent:
    """An event whose type is too long for the table's VARCHAR(100): the database refuses it."""

    event_type: ClassVar[str] = "X" * 101
    event_id: UUID
    occurred_on: datetime

    def payload(self) -> dict[str, object]:
        return {"event_type": self.event_type}


async def rows(database_url: str, stream: str) -> list[tuple[object, ...]]:
    """(version, event_type, payload, metadata) of each of the stream's rows, in order."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT version, event_type, payload, metadata FROM events"
            " WHERE aggregate_id = %s ORDER BY version",
            [stream],
        )
        return await cursor.fetchall()


async def position_of(database_url: str, event_id: UUID) -> Position:
    """The feed position of the stored event ``event_id``: (its transaction id, its row id)."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT transaction_id::text, id FROM events WHERE event_id = %s", [event_id]
        )
        row = await cursor.fetchone()
    assert row is not None, f"no event {event_id}"
    return Position(int(row[0]), row[1])
