"""The write path of the common batch: ``queries/append_single_events.sql``, set-based.

Every command of the batch has one event and no idempotency key, and no stream comes twice
(``accepts``). A batch of one, every lone client's, goes through
``queries/append_lone_event.sql`` instead: the same outcomes, its values sent as parameters
rather than as a JSON batch. Both statements are prepared on each connection and run on
libpq directly (``prepared``): this is every ``create order``'s path, so it does no more per
command than encode it and read its row.
"""

from collections.abc import Sequence

from cqrs_demo.domain.errors import ExpectedVersionMismatch
from cqrs_demo.ports import Appended, Position
from cqrs_demo.store.errors import StoreError, StoreUnavailable
from cqrs_demo.store.pending import PendingAppend, encode_json
from cqrs_demo.store.pool import Database
from cqrs_demo.store.prepared import PreparedStatement
from cqrs_demo.store.sql import query
from cqrs_demo.store.streams import stream_version

_APPEND_SINGLE_EVENTS = PreparedStatement(
    b"cqrs_append_single_events", query("append_single_events")
)
_APPEND_LONE_EVENT = PreparedStatement(b"cqrs_append_lone_event", query("append_lone_event"))


def accepts(batch: Sequence[PendingAppend]) -> bool:
    """Whether ``write`` can take ``batch``: one event and no idempotency key per command,
    and no stream twice (the statement tells commands by their stream)."""
    return all(len(command.events) == 1 and command.idempotency is None for command in batch) and (
        len({command.stream for command in batch}) == len(batch)
    )


async def write(database: Database, batch: Sequence[PendingAppend]) -> list[Appended | Exception]:
    """Write a batch that ``accepts`` takes, in one statement and one transaction; return
    each command's outcome, in order: ``Appended`` (with its event's feed position), or the
    ``ExpectedVersionMismatch`` (both versions) of a refused command, which leaves nothing.
    When any event is written, the transaction notifies ``notifications.EVENTS_CHANNEL``.

    Raises ``StoreUnavailable`` or ``StoreError`` (``Database``) when the statement fails
    as a whole: then nothing of the batch was written.
    """
    if len(batch) == 1:
        return await _run(database, batch, _APPEND_LONE_EVENT, _lone_event_params(batch[0]))
    return await write_as_batch(database, batch)


async def write_as_batch(
    database: Database, batch: Sequence[PendingAppend]
) -> list[Appended | Exception]:
    """``write`` through the batch statement whatever the batch's size (``write`` sends a
    batch of one through the lone statement; the tests hold each to the same outcomes)."""
    params = [encode_json([_single_event_json(command) for command in batch]).encode()]
    return await _run(database, batch, _APPEND_SINGLE_EVENTS, params)


async def _run(
    database: Database,
    batch: Sequence[PendingAppend],
    statement: PreparedStatement,
    params: Sequence[bytes | None],
) -> list[Appended | Exception]:
    """Each command's outcome from the rows of ``statement``, one per command by stream."""
    async with database.connection() as conn:
        rows = await statement.run(conn, params)
    decided = {stream: outcome for stream, *outcome in rows}
    outcomes: list[Appended | Exception] = []
    for command in batch:
        outcome, based_on_version, version, transaction_id, event_number = decided[
            command.stream.encode()
        ]
        if outcome == b"appended":
            assert version is not None
            assert transaction_id is not None
            assert event_number is not None
            event_ids = (command.events[0].event_id,)
            position = Position(int(transaction_id), int(event_number))
            outcomes.append(Appended(int(version), event_ids, command.result, position))
        else:
            assert based_on_version is not None
            head = None if version is None else int(version)
            outcomes.append(await _conflict(database, command, int(based_on_version), head))
    return outcomes


async def _conflict(
    database: Database, command: PendingAppend, based_on_version: int, head: int | None
) -> Exception:
    """The ``ExpectedVersionMismatch`` of a command the statement refused."""
    if head is None:
        # A race lost to a transaction that committed after the statement began: only a
        # new statement sees its version. The batch is committed by now, so a failure
        # here is this command's alone (raising would make the store write the batch again).
        try:
            head = await stream_version(database, command.stream)
        except (StoreError, StoreUnavailable) as error:
            return error
    return ExpectedVersionMismatch(command.stream, based_on_version, head)


def _lone_event_params(command: PendingAppend) -> list[bytes | None]:
    """The parameters of ``append_lone_event``, as text: the values ``_single_event_json``
    gives the batch statement, in the same notation."""
    (event,) = command.events
    expected = command.expected_version
    return [
        command.stream.encode(),
        None if expected is None else b"%d" % expected,
        str(event.event_id).encode(),
        event.event_type.encode(),
        event.occurred_on.isoformat().encode(),
        encode_json(event.payload()).encode(),
        encode_json(command.metadata).encode(),
    ]


def _single_event_json(command: PendingAppend) -> dict[str, object]:
    (event,) = command.events
    return {
        "stream": command.stream,
        "expected_version": command.expected_version,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "occurred_on": event.occurred_on,
        "payload": event.payload(),
        "metadata": command.metadata,
    }
