"""Idempotency keys recorded with the events, an append-only log, and a killed backend."""

import asyncio
from datetime import timedelta

import psycopg
import pytest

from cqrs_demo.domain.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from cqrs_demo.domain.ids import uuid7
from cqrs_demo.ports import IdempotencyKey
from cqrs_demo.store.errors import StoreUnavailable
from cqrs_demo.store.events import PostgresEventStore
from cqrs_demo.store.pool import Database
from tests.races import WAITING_ON_A_LOCK, hold_version_one, hold_versions, wait_for_blocked_appends
from tests.store.streams import new_stream, order, rows

pytestmark = pytest.mark.anyio


def key(request_hash: str = "hash-a") -> IdempotencyKey:
    return IdempotencyKey(f"key-{uuid7().hex}", request_hash)


async def test_the_same_key_and_request_replays_the_first_outcome(
    store: PostgresEventStore, database_url: str
) -> None:
    stream, idempotency = new_stream(), key()
    first = await store.append_events(
        stream,
        [order(stream)],
        expected_version=None,
        metadata={},
        idempotency=idempotency,
        result={"order_id": "first"},
    )
    again = await store.append_events(
        stream,
        [order(stream)],
        expected_version=None,
        metadata={},
        idempotency=idempotency,
        result={"order_id": "second"},
    )
    assert (again.stream_version, again.event_ids, again.result) == (
        first.stream_version,
        first.event_ids,
        {"order_id": "first"},
    )
    assert (first.replayed, again.replayed) == (False, True)
    assert len(await rows(database_url, stream)) == 1


async def test_the_same_key_with_another_request_is_refused(
    store: PostgresEventStore, database_url: str
) -> None:
    stream, idempotency = new_stream(), key("hash-a")
    await store.append_events(
        stream, [order(stream)], expected_version=None, metadata={}, idempotency=idempotency
    )
    with pytest.raises(IdempotencyKeyReused):
        await store.append_events(
            stream,
            [order(stream)],
            expected_version=None,
            metadata={},
            idempotency=IdempotencyKey(idempotency.key, "hash-b"),
        )
    assert len(await rows(database_url, stream)) == 1


async def test_a_refused_append_records_no_key(store: PostgresEventStore) -> None:
    stream, idempotency = new_stream(), key()
    await store.append_events(stream, [order(stream)], expected_version=0, metadata={})
    with pytest.raises(Exception, match="expected 0"):
        await store.append_events(
            stream, [order(stream)], expected_version=0, metadata={}, idempotency=idempotency
        )
    appended = await store.append_events(
        stream, [order(stream)], expected_version=1, metadata={}, idempotency=idempotency
    )
    assert (appended.stream_version, appended.replayed) == (2, False)


async def test_a_duplicate_while_the_first_is_in_flight_is_refused_at_once(
    store: PostgresEventStore, database_url: str
) -> None:
    stream, idempotency = new_stream(), key()
    holder = await hold_version_one(database_url, stream)
    first = asyncio.create_task(
        store.append_events(
            stream, [order(stream)], expected_version=None, metadata={}, idempotency=idempotency
        )
    )
    await wait_for_blocked_appends(database_url, 1)
    with pytest.raises(IdempotencyKeyInFlight):
        await store.append_events(
            stream, [order(stream)], expected_version=None, metadata={}, idempotency=idempotency
        )
    await holder.rollback()
    await holder.close()
    assert (await first).stream_version == 1


async def test_an_expired_key_is_used_afresh_and_pruned(
    database: Database, database_url: str
) -> None:
    store = PostgresEventStore(database, idempotency_retention=timedelta(hours=1))
    stream, idempotency = new_stream(), key()
    await store.append_events(
        stream, [order(stream)], expected_version=None, metadata={}, idempotency=idempotency
    )
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '2 hours'"
            " WHERE idempotency_key = %s",
            [idempotency.key],
        )
    again = await store.append_events(
        stream, [order(stream)], expected_version=None, metadata={}, idempotency=idempotency
    )
    assert (again.stream_version, again.replayed) == (2, False)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '2 hours'"
            " WHERE idempotency_key = %s",
            [idempotency.key],
        )
    assert await store.prune_idempotency_keys() >= 1
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM idempotency_keys WHERE idempotency_key = %s", [idempotency.key]
        )
        assert await cursor.fetchone() == (0,)


@pytest.mark.parametrize(
    ("statement", "operation"),
    [
        ("UPDATE events SET payload = '{}' WHERE aggregate_id = %s", "UPDATE"),
        ("DELETE FROM events WHERE aggregate_id = %s", "DELETE"),
        ("TRUNCATE events", "TRUNCATE"),
    ],
)
async def test_events_are_append_only_even_for_a_superuser(
    store: PostgresEventStore, database_url: str, statement: str, operation: str
) -> None:
    stream = new_stream()
    await store.append_events(stream, [order(stream)], expected_version=None, metadata={})
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        params = [stream] if "%s" in statement else None
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
            await conn.execute(statement, params)
    assert caught.value.diag.message_primary == (
        f"events are append-only: {operation} on events is refused"
    )
    assert caught.value.diag.message_hint == (
        "Correct a fact by appending a new event to its stream."
    )
    assert len(await rows(database_url, stream)) == 1


async def test_a_backend_killed_inside_a_two_event_append_leaves_nothing(
    store: PostgresEventStore, database_url: str
) -> None:
    # The append inserts version 1, then blocks on version 2, held by the test: it is then
    # inside its transaction, half written, when its backend is terminated.
    stream = new_stream()
    holder = await hold_versions(database_url, (stream,), version=2)
    append = asyncio.create_task(
        store.append_events(stream, [order(stream), order(stream)], expected_version=0, metadata={})
    )
    await wait_for_blocked_appends(database_url, 1)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as killer:
        cursor = await killer.execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {WAITING_ON_A_LOCK}"
        )
        assert await cursor.fetchall() == [(True,)]
    with pytest.raises(StoreUnavailable):
        await append
    await holder.rollback()
    await holder.close()
    assert await rows(database_url, stream) == []
    assert (
        await store.append_events(stream, [order(stream)], expected_version=0, metadata={})
    ).stream_version == 1
