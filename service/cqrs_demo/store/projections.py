"""The read models in PostgreSQL: their rows, each projection's checkpoint, and skips.

A batch is written in one transaction: the checkpoint moves first (from the position the
batch was read after, or nothing is written), then one statement per table writes every
changed row. A crash anywhere leaves either the batch and its checkpoint or neither.
"""

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from decimal import Decimal
from uuid import UUID

import orjson

from cqrs_demo.domain.projections import OpenOrder, OrderRow, ReadRow, RowKey, Table, UserSummary
from cqrs_demo.ports import Checkpoint, Position, ProjectionStatus, ProjectionStop, RowsExist
from cqrs_demo.store.errors import DuplicateRow
from cqrs_demo.store.pool import Database
from cqrs_demo.store.sql import query

_LOADS: Mapping[Table, str] = {
    "order": "projection_load_orders",
    "user_summary": "projection_load_user_summaries",
    "open_order": "projection_load_open_orders",
}


class NotStoppedAtEvent(Exception):
    """A skip named an event the projection is not stopped at; nothing was skipped."""


class PostgresReadModels:
    """The read-model tables and the checkpoints, through ``database``'s pool."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def checkpoint(self, projection: str) -> Checkpoint:
        """The projection's checkpoint, created at the start of the feed the first time.
        Raises ``StoreUnavailable`` or ``StoreError`` (``Database``)."""
        async with self._database.connection() as conn:
            cursor = await conn.execute(query("projection_checkpoint"), {"projection": projection})
            row = await cursor.fetchone()
        assert row is not None
        return _checkpoint(*row)

    async def checkpoint_if_any(self, projection: str) -> Checkpoint | None:
        """The checkpoint ``projection`` has, without creating one; ``None`` if none."""
        async with self._database.connection() as conn:
            cursor = await conn.execute(
                query("projection_checkpoint_if_any"), {"projection": projection}
            )
            row = await cursor.fetchone()
        return None if row is None else _checkpoint(*row)

    async def retry(self, projection: str) -> bool:
        """Set ``projection`` running again if it is stopped, so that its projector tries
        the event it stopped at again; whether it was stopped. Raises ``StoreUnavailable``
        or ``StoreError``."""
        async with self._database.connection() as conn:
            cursor = await conn.execute(query("projection_retry"), {"projection": projection})
            return cursor.rowcount == 1

    async def load_rows(self, keys: Collection[RowKey]) -> dict[RowKey, ReadRow | None]:
        """The rows of ``keys``, ``None`` for those that do not exist: one SELECT per table.
        Raises ``StoreUnavailable`` or ``StoreError``."""
        by_table: dict[Table, list[str]] = defaultdict(list)
        for table, key in keys:
            by_table[table].append(key)
        rows: dict[RowKey, ReadRow | None] = dict.fromkeys(keys)
        async with self._database.connection() as conn:
            for table, table_keys in by_table.items():
                cursor = await conn.execute(query(_LOADS[table]), {"keys": table_keys})
                for values in await cursor.fetchall():
                    rows[(table, str(values[0]))] = _ROW_TYPES[table](*values)
        return rows

    async def commit(
        self,
        projection: str,
        *,
        after: Checkpoint,
        rows: Mapping[RowKey, ReadRow | None],
        existing: Collection[RowKey],
        to: Position,
        applied: int,
        stop: ProjectionStop | None,
    ) -> bool:
        """In one statement (one transaction, one round trip): move ``projection``'s
        checkpoint from ``after`` to ``to`` (``applied`` events more; stopped for ``stop`` if
        given) and write ``rows`` (``None``: delete; a key in ``existing`` updated, any other
        inserted, so a key inserted that is there already is never a silent overwrite).
        Returns False, having written nothing, when the checkpoint is not
        at ``after``'s position and generation, or is stopped (another projector moved it,
        an operator stopped it, a rebuild was swapped in). Raises ``RowsExist``, having
        written nothing, when a row inserted was there already, ``StoreUnavailable`` (the
        outcome unknown if the connection broke while committing; the next checkpoint read
        tells) or ``StoreError``."""
        params = {
            "projection": projection,
            "from_transaction_id": str(after.position.transaction_id),
            "from_event_number": after.position.event_number,
            "generation": after.generation,
            "to_transaction_id": str(to.transaction_id),
            "to_event_number": to.event_number,
            "applied": applied,
            "error": None if stop is None else stop.error,
            "failed_event_id": None if stop is None else stop.event_id,
            "failed_event_type": None if stop is None else stop.event_type,
            **_row_parameters(rows, existing),
        }
        try:
            async with self._database.connection() as conn:
                cursor = await conn.execute(query("projection_commit"), params)
                moved = await cursor.fetchone()
        except DuplicateRow as error:
            raise RowsExist(f"a row inserted as new was there already ({error})") from error
        return moved == (1,)

    async def status(self, projections: Sequence[str]) -> list[ProjectionStatus]:
        """Each of ``projections`` (checkpointed or not), with the feed's head and how far
        behind it the projection is. Raises ``StoreUnavailable`` or ``StoreError``."""
        async with self._database.connection() as conn:
            cursor = await conn.execute(query("projection_status"), {"projections": projections})
            rows = await cursor.fetchall()
        return [_status(*row) for row in rows]

    async def skip(self, projection: str, event_id: UUID, *, reason: str, by: str) -> Position:
        """Skip ``event_id``, the event ``projection`` stopped at: recorded in
        ``projection_skips`` with ``reason`` and ``by``, the checkpoint moved onto it and the
        projection running again, in one transaction. Returns the event's position. Raises
        ``NotStoppedAtEvent`` (nothing changed) when the projection is not stopped at that
        event, and ``StoreUnavailable`` or ``StoreError``."""
        params = {
            "projection": projection,
            "event_id": event_id,
            "reason": reason,
            "skipped_by": by,
        }
        async with self._database.connection() as conn:
            cursor = await conn.execute(query("projection_skip"), params)
            row = await cursor.fetchone()
        if row is None:
            raise NotStoppedAtEvent(f"projection {projection!r} is not stopped at event {event_id}")
        return Position(int(str(row[0])), int(str(row[1])))


# The parameters of projection_commit.sql holding each table's rows new to it, and those
# holding the rows it had, changed (an open order is never changed: placed, then deleted).
_NEW: Mapping[type[ReadRow], str] = {
    OrderRow: "new_orders",
    UserSummary: "new_summaries",
    OpenOrder: "opened",
}
_CHANGED: Mapping[type[ReadRow], str] = {
    OrderRow: "changed_orders",
    UserSummary: "changed_summaries",
}


def _row_parameters(
    rows: Mapping[RowKey, ReadRow | None], existing: Collection[RowKey]
) -> dict[str, str | list[str]]:
    """``rows`` as projection_commit.sql's parameters: per table, the rows new to it and the
    rows it had (those of ``existing`` keys), each a JSON array; the open orders deleted.
    (Inserted rather than upserted, a new row writes less to the WAL, which the commands'
    commits then flush: ``docs/performance.md``.)"""
    by_parameter: dict[str, list[ReadRow]] = defaultdict(list)
    closed: list[str] = []
    for key, row in rows.items():
        if row is None:
            closed.append(_open_order_key(key))
        elif key not in existing:
            by_parameter[_NEW[type(row)]].append(row)
        elif (changed := _CHANGED.get(type(row))) is not None:
            by_parameter[changed].append(row)
        else:
            raise ValueError(f"a row of {key[0]} is never changed: {key[1]}")
    names = (*_NEW.values(), *_CHANGED.values())
    parameters: dict[str, str | list[str]] = {name: _json(by_parameter[name]) for name in names}
    parameters["closed"] = closed
    return parameters


def _open_order_key(key: RowKey) -> str:
    """The order id of a deleted row: only open orders are ever deleted."""
    table, order_id = key
    if table != "open_order":
        raise ValueError(f"a row of {table} is never deleted: {order_id}")
    return order_id


def _json(rows: Sequence[ReadRow]) -> str:
    """``rows`` as a JSON array of objects named by field; a ``Decimal`` as its string, so
    that the statement reads it back exactly. (orjson writes dataclasses itself: a tenth of
    the time psycopg took to send the same rows as one array per column.)"""
    return orjson.dumps(rows, default=_decimal_text).decode()


def _decimal_text(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a read-model value")


# A row from its columns, in the order of the load statements (typed by the tables' columns).
_ROW_TYPES: Mapping[Table, Callable[..., ReadRow]] = {
    "order": OrderRow,
    "user_summary": UserSummary,
    "open_order": OpenOrder,
}


def _checkpoint(
    transaction_id: object,
    event_number: object,
    events_applied: object,
    state: object,
    error: object,
    failed_event_id: object,
    failed_event_type: object,
    generation: object,
) -> Checkpoint:
    assert isinstance(event_number, int)
    assert isinstance(events_applied, int)
    assert isinstance(failed_event_id, UUID | None)
    assert isinstance(generation, int)
    return Checkpoint(
        Position(int(str(transaction_id)), event_number),
        events_applied,
        str(state),
        None if error is None else str(error),
        failed_event_id,
        None if failed_event_type is None else str(failed_event_type),
        generation,
    )


def _status(
    projection: object,
    *checkpoint_and_more: object,
) -> ProjectionStatus:
    *checkpoint, head_transaction_id, head_event_number, behind, seconds = checkpoint_and_more
    assert isinstance(behind, int)
    assert isinstance(seconds, float)
    head = (
        Position(0, 0)
        if head_transaction_id is None
        else Position(int(str(head_transaction_id)), int(str(head_event_number)))
    )
    return ProjectionStatus(str(projection), _checkpoint(*checkpoint), head, behind, seconds)


async def projection_status(conninfo: str, projections: Sequence[str]) -> list[ProjectionStatus]:
    """``PostgresReadModels.status`` on a connection of its own (the command line's)."""
    database = await _one_connection(conninfo)
    try:
        return await PostgresReadModels(database).status(projections)
    finally:
        await database.close()


async def skip_event(
    conninfo: str, projection: str, event_id: UUID, *, reason: str, by: str
) -> str:
    """``PostgresReadModels.skip`` on a connection of its own; what was done, in a line."""
    database = await _one_connection(conninfo)
    try:
        position = await PostgresReadModels(database).skip(
            projection, event_id, reason=reason, by=by
        )
    finally:
        await database.close()
    return (
        f"skipped event {event_id} (position {position}) of projection {projection},"
        f" recorded as done by {by}; the projection goes on after it"
    )


async def _one_connection(conninfo: str) -> Database:
    database = Database(conninfo, min_size=1, max_size=1, timeout=10)
    await database.open(wait_seconds=10)
    return database
