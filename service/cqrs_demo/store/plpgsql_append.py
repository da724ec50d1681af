"""The write path of any batch: the PL/pgSQL function ``append_events``
(``functions/append_events.sql``, which states the rules), called once per batch.

It takes what ``set_based_append`` does not: several events per command, idempotency keys,
one stream several times in a batch.
"""

from collections.abc import Sequence
from datetime import timedelta

from cqrs_demo.domain.errors import (
    ExpectedVersionMismatch,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
)
from cqrs_demo.ports import Appended
from cqrs_demo.store.pending import PendingAppend, appended_row, encode_json
from cqrs_demo.store.pool import Database
from cqrs_demo.store.sql import query


async def write(
    database: Database, batch: Sequence[PendingAppend], *, idempotency_retention: timedelta
) -> list[Appended | Exception]:
    """Write ``batch`` in one statement and one transaction; return each command's outcome,
    in order: ``Appended`` (``replayed`` for a key seen within ``idempotency_retention``,
    with the position of the recorded command's last event), or the error of a refused
    command, which leaves nothing: ``ExpectedVersionMismatch``
    (both versions), ``IdempotencyKeyReused``, ``IdempotencyKeyInFlight``. When any event
    is written, the transaction notifies ``notifications.EVENTS_CHANNEL``.

    Raises ``StoreUnavailable`` or ``StoreError`` (``Database``) when the statement fails
    as a whole: then nothing of the batch was written.
    """
    # Sorted by stream (stably: one stream's commands keep their order), so that two
    # batches always wait for each other's rows in the same order: no deadlock.
    order = sorted(range(len(batch)), key=lambda index: batch[index].stream)
    commands = [batch[index] for index in order]
    params = {
        "batch": encode_json([_as_json(command) for command in commands]),
        "idempotency_retention": idempotency_retention,
    }
    async with database.connection() as conn:
        cursor = await conn.execute(query("append_events"), params)
        rows = await cursor.fetchall()
    outcomes: list[Appended | Exception] = [AssertionError("no outcome")] * len(batch)
    for command_number, *outcome in rows:
        assert isinstance(command_number, int)
        index = order[command_number - 1]
        outcomes[index] = _outcome(batch[index], *outcome)
    return outcomes


def _as_json(command: PendingAppend) -> dict[str, object]:
    return {
        "stream": command.stream,
        "expected_version": command.expected_version,
        "metadata": command.metadata,
        "idempotency_key": command.idempotency.key if command.idempotency else None,
        "request_hash": command.idempotency.request_hash if command.idempotency else None,
        "result": command.result,
        "events": [
            {
                "event_id": event.event_id,
                "event_type": event.event_type,
                "occurred_on": event.occurred_on,
                "payload": event.payload(),
            }
            for event in command.events
        ],
    }


def _outcome(
    command: PendingAppend,
    outcome: object,
    based_on_version: object,
    stream_version: object,
    event_ids: object,
    result: object,
    transaction_id: object,
    event_number: object,
) -> Appended | Exception:
    """One row of ``append_events``: an ``Appended``, or the error it stands for."""
    key = command.idempotency.key if command.idempotency else ""
    match outcome:
        case "appended" | "replayed":
            return appended_row(
                stream_version,
                event_ids,
                result,
                transaction_id,
                event_number,
                replayed=outcome == "replayed",
            )
        case "conflict":
            assert isinstance(based_on_version, int)
            assert isinstance(stream_version, int)
            return ExpectedVersionMismatch(command.stream, based_on_version, stream_version)
        case "key_reused":
            return IdempotencyKeyReused(key)
        case "key_in_flight":
            return IdempotencyKeyInFlight(key)
    raise AssertionError(f"append_events answered {outcome!r}")
