"""Group commit: batches form under concurrency, and each command keeps its own outcome."""

import asyncio
from datetime import timedelta

import psycopg
import pytest

from cqrs_demo.domain.errors import ExpectedVersionMismatch
from cqrs_demo.handlers import Appended
from cqrs_demo.store.errors import StoreError
from cqrs_demo.store.events import PostgresEventStore
from cqrs_demo.store.pool import Database
from tests.store.test_event_store import new_stream, order

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(database: Database) -> PostgresEventStore:
    """One writer: everything that arrives while it writes goes into the next batch."""
    return PostgresEventStore(
        database, idempotency_retention=timedelta(hours=1), max_batch=64, max_in_flight=1
    )


async def transactions_of(database_url: str, streams: list[str]) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT aggregate_id, transaction_id::text::bigint FROM events"
            " WHERE aggregate_id = ANY(%s)",
            [streams],
        )
        return dict(await cursor.fetchall())


async def test_concurrent_appends_share_transactions(
    store: PostgresEventStore, database_url: str
) -> None:
    streams = [new_stream() for _ in range(50)]
    outcomes = await asyncio.gather(
        *(
            store.append_events(stream, [order(stream)], expected_version=0, metadata={})
            for stream in streams
        )
    )
    assert [outcome.stream_version for outcome in outcomes] == [1] * 50
    transactions = await transactions_of(database_url, streams)
    assert len(transactions) == 50
    assert len(set(transactions.values())) < 10, "no batches were formed"


async def test_a_conflict_in_a_batch_refuses_that_command_only(
    store: PostgresEventStore, database_url: str
) -> None:
    taken = new_stream()
    await store.append_events(taken, [order(taken)], expected_version=0, metadata={})
    others = [new_stream() for _ in range(5)]
    outcomes = await asyncio.gather(
        *(store.append_events(s, [order(s)], expected_version=0, metadata={}) for s in others),
        store.append_events(taken, [order(taken)], expected_version=0, metadata={}),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, Appended) for outcome in outcomes[:-1])
    refused = outcomes[-1]
    assert isinstance(refused, ExpectedVersionMismatch)
    assert (refused.expected_version, refused.actual_version) == (0, 1)
    assert len(await transactions_of(database_url, [*others, taken])) == 6


async def test_one_stream_in_one_batch_keeps_the_order_of_arrival(
    store: PostgresEventStore, database_url: str
) -> None:
    stream = new_stream()
    events = [order(stream) for _ in range(5)]
    outcomes = await asyncio.gather(
        *(
            store.append_events(stream, [event], expected_version=None, metadata={})
            for event in events
        )
    )
    assert [outcome.stream_version for outcome in outcomes] == [1, 2, 3, 4, 5]
    assert [outcome.event_ids[0] for outcome in outcomes] == [e.event_id for e in events]


async def test_a_command_the_database_refuses_fails_alone(
    store: PostgresEventStore, database_url: str
) -> None:
    doomed = new_stream()
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(f"""
            CREATE OR REPLACE FUNCTION refuse_doomed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
            CREATE TRIGGER refuse_doomed BEFORE INSERT ON events FOR EACH ROW
                WHEN (NEW.aggregate_id = '{doomed}') EXECUTE FUNCTION refuse_doomed();
        """)
    try:
        others = [new_stream() for _ in range(5)]
        outcomes = await asyncio.gather(
            *(
                store.append_events(s, [order(s)], expected_version=0, metadata={})
                for s in others[:3]
            ),
            store.append_events(doomed, [order(doomed)], expected_version=0, metadata={}),
            *(
                store.append_events(s, [order(s)], expected_version=0, metadata={})
                for s in others[3:]
            ),
            return_exceptions=True,
        )
    finally:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute("DROP TRIGGER refuse_doomed ON events")
    assert isinstance(outcomes[3], StoreError)
    assert all(isinstance(o, Appended) for i, o in enumerate(outcomes) if i != 3)
    assert set(await transactions_of(database_url, [*others, doomed])) == set(others)
