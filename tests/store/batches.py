"""Batches formed on purpose: a gate command blocks the store's only writer while the
commands under test queue up behind it; they then go out together, as its next batch."""

import asyncio
from collections.abc import Coroutine, Sequence

from cqrs_demo.domain.events import DomainEvent
from cqrs_demo.ports import Appended, IdempotencyKey
from cqrs_demo.store.events import PostgresEventStore
from tests.races import hold_version_one, wait_for_blocked_appends
from tests.store.streams import new_stream, order

Append = Coroutine[object, object, Appended]


def append(
    store: PostgresEventStore,
    stream: str,
    events: Sequence[DomainEvent] | None = None,
    *,
    expected_version: int | None = None,
    idempotency: IdempotencyKey | None = None,
) -> Append:
    """``store.append_events`` of ``events`` (one new order by default), no metadata."""
    return store.append_events(
        stream,
        events or [order(stream)],
        expected_version=expected_version,
        metadata={},
        idempotency=idempotency,
    )


async def in_one_batch(
    store: PostgresEventStore, database_url: str, appends: list[Append], *, blocked: int = 0
) -> list[asyncio.Task[Appended]]:
    """Start ``appends`` so that they form one batch; return once the writer has taken them
    as its next batch. ``store`` must have one writer (``max_in_flight=1``) or ``blocked``
    say how many of its writers already wait on a lock."""
    gate = new_stream()
    holder = await hold_version_one(database_url, gate)
    gate_append = asyncio.create_task(append(store, gate))
    await wait_for_blocked_appends(database_url, blocked + 1)
    tasks = [asyncio.create_task(each) for each in appends]
    await asyncio.sleep(0)  # each task runs up to its submit: queued behind the gate
    await holder.rollback()
    await holder.close()
    await gate_append  # the writer took the queue as its next batch before answering it
    return tasks
