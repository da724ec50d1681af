"""Group commit: batches form under concurrency, and each command keeps its own outcome."""

import asyncio

import psycopg
import pytest

from cqrs_demo.domain.errors import ExpectedVersionMismatch
from cqrs_demo.ports import Appended
from cqrs_demo.store.errors import StoreError
from cqrs_demo.store.events import PostgresEventStore
from tests.races import transactions_of
from tests.store.batches import append, in_one_batch
from tests.store.streams import new_stream, order, rows

pytestmark = pytest.mark.anyio


async def test_concurrent_appends_share_transactions(
    one_writer_store: PostgresEventStore, database_url: str
) -> None:
    streams = [new_stream() for _ in range(50)]
    outcomes = await asyncio.gather(
        *(
            one_writer_store.append_events(stream, [order(stream)], expected_version=0, metadata={})
            for stream in streams
        )
    )
    assert [outcome.stream_version for outcome in outcomes] == [1] * 50
    transactions = await transactions_of(database_url, streams)
    assert len(transactions) == 50
    assert len(set(transactions.values())) < 10, "no batches were formed"


async def one_batch_with_one_odd(
    store: PostgresEventStore, database_url: str, others: list[str], odd: str
) -> list[Appended | BaseException]:
    """Appends at version 0 to three of ``others``, ``odd``, the rest of ``others``, all in
    one batch; their outcomes, in that order (``odd``'s fourth)."""
    streams = [*others[:3], odd, *others[3:]]
    appends = [append(store, stream, expected_version=0) for stream in streams]
    tasks = await in_one_batch(store, database_url, appends)
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_conflict_in_a_batch_refuses_that_command_only(
    one_writer_store: PostgresEventStore, database_url: str
) -> None:
    taken = new_stream()
    await one_writer_store.append_events(taken, [order(taken)], expected_version=0, metadata={})
    others = [new_stream() for _ in range(5)]
    outcomes = await one_batch_with_one_odd(one_writer_store, database_url, others, taken)
    refused = outcomes.pop(3)
    assert all(isinstance(outcome, Appended) for outcome in outcomes)
    assert isinstance(refused, ExpectedVersionMismatch)
    assert (refused.expected_version, refused.actual_version) == (0, 1)
    transactions = await transactions_of(database_url, [*others, taken])
    # One batch, really: the five others committed in one transaction, the one that
    # refused the conflicting command (whose stream kept only its first, older row).
    assert len({transactions[s] for s in others}) == 1, transactions
    assert transactions[taken] != transactions[others[0]]
    assert [row[0] for row in await rows(database_url, taken)] == [1]


async def test_one_stream_in_one_batch_keeps_the_order_of_arrival(
    one_writer_store: PostgresEventStore, database_url: str
) -> None:
    stream = new_stream()
    events = [order(stream) for _ in range(5)]
    outcomes = await asyncio.gather(
        *(
            one_writer_store.append_events(stream, [event], expected_version=None, metadata={})
            for event in events
        )
    )
    assert [outcome.stream_version for outcome in outcomes] == [1, 2, 3, 4, 5]
    assert [outcome.event_ids[0] for outcome in outcomes] == [e.event_id for e in events]


async def test_a_command_the_database_refuses_fails_alone(
    one_writer_store: PostgresEventStore, database_url: str
) -> None:
    # The trigger refuses the doomed stream's row once the statement has inserted every
    # row (an AFTER trigger), and first notes how many rows that transaction held: in a
    # sequence, which a rollback does not undo. So the test sees the batch it broke.
    doomed = new_stream()
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(f"""
            CREATE SEQUENCE rows_beside_doomed;
            CREATE FUNCTION refuse_doomed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NOT (SELECT is_called FROM rows_beside_doomed) THEN
                    PERFORM setval('rows_beside_doomed', (SELECT count(*) FROM events
                        WHERE transaction_id = NEW.transaction_id));
                END IF;
                RAISE EXCEPTION 'refused by the test';
            END $$;
            CREATE TRIGGER refuse_doomed AFTER INSERT ON events FOR EACH ROW
                WHEN (NEW.aggregate_id = '{doomed}') EXECUTE FUNCTION refuse_doomed();
        """)
    try:
        others = [new_stream() for _ in range(5)]
        outcomes = await one_batch_with_one_odd(one_writer_store, database_url, others, doomed)
    finally:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            cursor = await conn.execute("SELECT last_value, is_called FROM rows_beside_doomed")
            first_refusal = await cursor.fetchone()
            await conn.execute(
                "DROP TRIGGER refuse_doomed ON events; DROP FUNCTION refuse_doomed();"
                " DROP SEQUENCE rows_beside_doomed"
            )
    # The doomed command was first tried in one transaction with all five others.
    assert first_refusal == (6, True)
    assert isinstance(outcomes[3], StoreError)
    assert all(isinstance(o, Appended) for i, o in enumerate(outcomes) if i != 3)
    assert set(await transactions_of(database_url, [*others, doomed])) == set(others)
