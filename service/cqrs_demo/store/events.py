"""The event store: appends, alone or in group commits, by one of two write paths.

A batch that ``set_based_append`` accepts (one event and no idempotency key per command, no
stream twice: every lone ``create order``) goes through its set-based statement; any other
through ``plpgsql_append``. Both give a command the same outcome; the store tests prove it
case by case against each path.
"""

from collections.abc import Mapping, Sequence
from datetime import timedelta

from cqrs_demo.domain.events import DomainEvent
from cqrs_demo.metrics.tally import TALLY
from cqrs_demo.ports import Appended, Direction, FeedPage, IdempotencyKey, Position, StreamSlice
from cqrs_demo.store import plpgsql_append, set_based_append
from cqrs_demo.store.errors import StoreError
from cqrs_demo.store.feed import read_feed
from cqrs_demo.store.group_commit import GroupCommit
from cqrs_demo.store.idempotency import recorded_outcome
from cqrs_demo.store.pending import PendingAppend
from cqrs_demo.store.pool import Database
from cqrs_demo.store.sql import query
from cqrs_demo.store.streams import read_stream, stream_version


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
        """One statement, one transaction: every command of ``batch`` decided on its own.
        Counted in the metrics when they are on: the batch's size, the events it added."""
        if set_based_append.accepts(batch):
            outcomes = await set_based_append.write(self._database, batch)
        else:
            outcomes = await plpgsql_append.write(
                self._database, batch, idempotency_retention=self.idempotency_retention
            )
        if TALLY.on:
            TALLY.written(len(batch), _events_added(outcomes))
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

    async def read_feed(self, after: Position, limit: int) -> FeedPage:
        """Up to ``limit`` events of every stream after ``after`` (``ports.START``: from
        the first), in feed order: by writing transaction, then by row. Only events of
        transactions that ended before every transaction still running are read, so no
        event is ever skipped: one committed later is never behind the position a reader
        has passed. A long-running writer holds readers back until it ends. Raises
        ``StoreUnavailable`` or ``StoreError`` (``Database``)."""
        return await read_feed(self._database, after, limit)

    async def stream_version(self, stream: str) -> int:
        """The version of the stream's last event; 0 for a stream with no events."""
        return await stream_version(self._database, stream)

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


def _events_added(outcomes: Sequence[Appended | Exception]) -> int:
    """Events written by the commands of a batch (a replayed key's wrote none)."""
    return sum(
        len(outcome.event_ids)
        for outcome in outcomes
        if isinstance(outcome, Appended) and not outcome.replayed
    )
