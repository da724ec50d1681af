"""Appending events to streams, alone or in group commits, and reading streams."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import orjson

from cqrs_demo.domain.errors import (
    ExpectedVersionMismatch,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
)
from cqrs_demo.domain.events import DomainEvent
from cqrs_demo.ports import Appended, Direction, IdempotencyKey, StreamSlice
from cqrs_demo.store.errors import StoreError, StoreUnavailable
from cqrs_demo.store.group_commit import GroupCommit
from cqrs_demo.store.idempotency import recorded_outcome
from cqrs_demo.store.pool import Database
from cqrs_demo.store.prepared import PreparedStatement
from cqrs_demo.store.sql import query
from cqrs_demo.store.streams import read_stream

_APPEND_SINGLE_EVENTS = PreparedStatement(
    b"cqrs_append_single_events", query("append_single_events")
)


@dataclass(frozen=True, slots=True)
class PendingAppend:
    """One command's append, as it waits for its batch."""

    stream: str
    events: Sequence[DomainEvent]
    expected_version: int | None
    metadata: Mapping[str, object]
    idempotency: IdempotencyKey | None
    result: Mapping[str, object]


class PostgresEventStore:
    """Streams of events in the ``events`` table, one row per event.

    With ``max_batch`` above 1, concurrent appends are written in group commits (see
    ``group_commit``) by at most ``max_in_flight`` connections at a time; with 1, every
    append is its own statement. Both give each command the same outcome.
    """

    def __init__(
        self,
        database: Database,
        *,
        idempotency_retention: timedelta,
        max_batch: int = 1,
        max_in_flight: int = 1,
        overlap_after: float = 0.0,
    ) -> None:
        self._database = database
        self.idempotency_retention = idempotency_retention
        self._group: GroupCommit[PendingAppend, Appended] | None = None
        if max_batch > 1:
            self._group = GroupCommit(
                self._write_or_split,
                max_batch=max_batch,
                max_in_flight=max_in_flight,
                overlap_after=overlap_after,
            )

    async def append_events(
        self,
        stream: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: int | None,
        metadata: Mapping[str, object],
        idempotency: IdempotencyKey | None = None,
        result: Mapping[str, object] | None = None,
    ) -> Appended:
        """Append all ``events`` to ``stream`` in one transaction, or none of them.

        The events take versions head+1..head+n, where head is the stream's version when the
        command is written; with ``expected_version`` given, head must equal it. With
        ``idempotency``, the key and ``result`` are recorded in the same transaction, and a
        key seen within the retention period is answered from that record instead.
        Returns once the events are committed.

        Raises ``ExpectedVersionMismatch`` (both versions) when the stream was elsewhere or a
        concurrent append took the versions first; ``IdempotencyKeyReused`` and
        ``IdempotencyKeyInFlight``; ``StoreUnavailable`` or ``StoreError`` (``Database``).
        """
        if not events:
            raise ValueError("append_events needs at least one event")
        pending = PendingAppend(
            stream, events, expected_version, metadata, idempotency, result or {}
        )
        # While the database is unreachable, commands do not queue behind a batch that is
        # waiting for a connection: each gets its 503 within UNREACHABLE_WAIT_SECONDS.
        if self._group is not None and not self._database.unreachable:
            return await self._group.submit(pending)
        (outcome,) = await self._write([pending])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _write_or_split(
        self, batch: Sequence[PendingAppend]
    ) -> Sequence[Appended | Exception]:
        """Write a batch; if the database refuses it for one command's sake (an error other
        than a conflict), write each command alone, so that only that one fails."""
        try:
            return await self._write(batch)
        except StoreError:
            if len(batch) == 1:
                raise
        outcomes: list[Appended | Exception] = []
        for pending in batch:
            try:
                outcomes.extend(await self._write([pending]))
            except StoreError as error:
                outcomes.append(error)
        return outcomes

    async def _write(self, batch: Sequence[PendingAppend]) -> list[Appended | Exception]:
        """One statement, one transaction: every command of ``batch`` decided on its own."""
        if _single_events(batch):
            return await self._write_single_events(batch)
        return await self._write_commands(batch)

    async def _write_single_events(
        self, batch: Sequence[PendingAppend]
    ) -> list[Appended | Exception]:
        """``append_single_events``: for batches that ``_single_events`` accepts."""
        params = [encode_json([_single_event_json(command) for command in batch]).encode()]
        async with self._database.connection() as conn:
            rows = await _APPEND_SINGLE_EVENTS.run(conn, params)
        decided = {stream: outcome for stream, *outcome in rows}
        outcomes: list[Appended | Exception] = []
        for command in batch:
            outcome, based_on_version, stream_version = decided[command.stream.encode()]
            if outcome == b"appended":
                assert stream_version is not None
                event_ids = (command.events[0].event_id,)
                outcomes.append(Appended(int(stream_version), event_ids, command.result))
            else:
                assert based_on_version is not None
                version = None if stream_version is None else int(stream_version)
                outcomes.append(await self._conflict(command, int(based_on_version), version))
        return outcomes

    async def _conflict(
        self, command: PendingAppend, based_on_version: int, stream_version: int | None
    ) -> Exception:
        """The ``ExpectedVersionMismatch`` of a command ``append_single_events`` refused."""
        if stream_version is None:
            # A race lost to a transaction that committed after the statement began: only a
            # new statement sees its version. The batch is committed by now, so a failure
            # here is this command's alone (raising would make _write_or_split write again).
            try:
                stream_version = await self.stream_version(command.stream)
            except (StoreError, StoreUnavailable) as error:
                return error
        return ExpectedVersionMismatch(command.stream, based_on_version, stream_version)

    async def _write_commands(self, batch: Sequence[PendingAppend]) -> list[Appended | Exception]:
        """``append_events``: any batch (several events, idempotency keys, a stream twice)."""
        # Sorted by stream (stably: one stream's commands keep their order), so that two
        # batches always wait for each other's rows in the same order: no deadlock.
        order = sorted(range(len(batch)), key=lambda index: batch[index].stream)
        commands = [batch[index] for index in order]
        params = {
            "batch": encode_json([_as_json(command) for command in commands]),
            "idempotency_retention": self.idempotency_retention,
        }
        async with self._database.connection() as conn:
            cursor = await conn.execute(query("append_events"), params)
            rows = await cursor.fetchall()
        outcomes: list[Appended | Exception] = [AssertionError("no outcome")] * len(batch)
        for command_number, *outcome in rows:
            assert isinstance(command_number, int)
            index = order[command_number - 1]
            outcomes[index] = _outcome(batch[index], *outcome)
        return outcomes

    async def read_stream(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        limit: int | None = None,
        direction: Direction = Direction.FORWARD,
    ) -> StreamSlice:
        """Events of ``stream`` and its version, in one snapshot.

        Forward: versions ``from_version`` (``None``: 1) and up, oldest first. Backward:
        versions ``from_version`` (``None``: the head) and down, newest first. At most
        ``limit`` events (``None``: all). A stream with no events reads as no events at
        version 0. Raises ``StoreUnavailable`` or ``StoreError`` (``Database``).
        """
        return await read_stream(
            self._database, stream, from_version=from_version, limit=limit, direction=direction
        )

    async def stream_version(self, stream: str) -> int:
        """The version of the stream's last event; 0 for a stream with no events."""
        async with self._database.connection() as conn:
            cursor = await conn.execute(query("stream_version"), {"stream": stream})
            row = await cursor.fetchone()
        assert row is not None
        assert isinstance(row[0], int)
        return row[0]

    async def recorded_outcome(self, idempotency: IdempotencyKey) -> Appended | None:
        """The outcome recorded under ``idempotency``'s key within the retention period, as
        a replay; ``None`` when the key is unknown or expired. Raises
        ``IdempotencyKeyReused`` when the key was recorded for another request, and
        ``StoreUnavailable`` or ``StoreError`` (``Database``)."""
        return await recorded_outcome(self._database, idempotency, self.idempotency_retention)

    async def prune_idempotency_keys(self) -> int:
        """Forget keys older than the retention period; return how many were removed."""
        async with self._database.connection() as conn:
            cursor = await conn.execute(
                query("prune_idempotency_keys"), {"retention": self.idempotency_retention}
            )
            return cursor.rowcount


def _single_events(batch: Sequence[PendingAppend]) -> bool:
    """Whether ``append_single_events`` can write ``batch``: one event and no idempotency
    key per command, and no stream twice (the statement tells commands by their stream)."""
    return all(len(command.events) == 1 and command.idempotency is None for command in batch) and (
        len({command.stream for command in batch}) == len(batch)
    )


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
) -> Appended | Exception:
    """One row of ``append_events``: an ``Appended``, or the error it stands for."""
    key = command.idempotency.key if command.idempotency else ""
    match outcome:
        case "appended" | "replayed":
            assert isinstance(stream_version, int)
            assert isinstance(event_ids, list)
            assert isinstance(result, dict)
            return Appended(stream_version, tuple(event_ids), result, outcome == "replayed")
        case "conflict":
            assert isinstance(based_on_version, int)
            assert isinstance(stream_version, int)
            return ExpectedVersionMismatch(command.stream, based_on_version, stream_version)
        case "key_reused":
            return IdempotencyKeyReused(key)
        case "key_in_flight":
            return IdempotencyKeyInFlight(key)
    raise AssertionError(f"append_events answered {outcome!r}")


def encode_json(value: object) -> str:
    """JSON text with ``Decimal`` written as an exact number literal, never via a float."""
    return orjson.dumps(value, default=_exact_decimal).decode()


def _exact_decimal(value: object) -> orjson.Fragment:
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
