"""Migrations: applied once, in order, recorded; safe to run twice and from two places."""

import asyncio
import os
import subprocess

import psycopg
import pytest

from cqrs_demo.localdb import LocalPostgres
from cqrs_demo.store.errors import MigrationChanged, SchemaNotCurrent
from cqrs_demo.store.schema import MIGRATION_LOCK_KEY, check_database, migrate
from cqrs_demo.store.sql import latest_schema_version, migrations
from tests.races import wait_for_sessions
from tests.support import CQRS_DEMO

pytestmark = pytest.mark.anyio
WAITING_FOR_THE_MIGRATION_LOCK = "wait_event_type = 'Lock' AND wait_event = 'advisory'"


@pytest.fixture
def empty_database(postgres: LocalPostgres, request: pytest.FixtureRequest) -> str:
    name = f"schema_{request.node.name.lower().replace('[', '_').rstrip(']')}_{os.getpid()}"
    postgres.create_database(name[:63])
    return postgres.url(name[:63])


async def test_the_shipped_migrations_are_numbered_without_gaps() -> None:
    assert [m.version for m in migrations()] == list(range(1, latest_schema_version() + 1))
    assert migrations()[0].name == "0001_create_events"


async def test_migrate_applies_everything_once(empty_database: str) -> None:
    assert [m.name for m in await migrate(empty_database)] == [m.name for m in migrations()]
    assert await migrate(empty_database) == []
    assert await check_database(empty_database) == latest_schema_version()


async def test_the_seed_table_and_indexes_exist_as_the_seed_defines_them(
    empty_database: str,
) -> None:
    await migrate(empty_database)
    async with await psycopg.AsyncConnection.connect(empty_database) as conn:
        cursor = await conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_name = 'events' ORDER BY ordinal_position"
        )
        columns = await cursor.fetchall()
        cursor = await conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'events' ORDER BY 1"
        )
        indexes = [row[0] for row in await cursor.fetchall()]
    assert columns == [
        ("id", "bigint", "NO"),
        ("aggregate_id", "character varying", "NO"),
        ("event_type", "character varying", "NO"),
        ("payload", "jsonb", "NO"),
        ("occurred_on", "timestamp with time zone", "NO"),
        ("version", "bigint", "NO"),
        ("created_at", "timestamp with time zone", "NO"),
        ("event_id", "uuid", "NO"),
        ("metadata", "jsonb", "NO"),
        ("transaction_id", "xid8", "NO"),
    ]
    assert indexes == [
        "events_pkey",
        "idx_events_aggregate_id",
        "idx_events_occurred_on",
        "idx_events_transaction_id_id",
        "unique_event_id",
        "unique_event_per_aggregate_version",
    ]


async def test_two_migrations_at_once_apply_each_file_once(empty_database: str) -> None:
    # The test takes the migration lock first, so both runs must wait for it; it lets go
    # only once both are seen waiting. Then one applies everything, the other nothing.
    async with await psycopg.AsyncConnection.connect(empty_database, autocommit=True) as lock:
        await lock.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
        both = asyncio.gather(migrate(empty_database), migrate(empty_database))
        try:
            await wait_for_sessions(
                empty_database, 2, WAITING_FOR_THE_MIGRATION_LOCK, what="migrations waiting"
            )
        finally:
            await lock.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])
        first, second = await both
    assert sorted([len(first), len(second)]) == [0, latest_schema_version()]
    async with await psycopg.AsyncConnection.connect(empty_database) as conn:
        cursor = await conn.execute("SELECT count(*) FROM schema_migrations")
        assert await cursor.fetchone() == (latest_schema_version(),)


async def test_the_seed_table_made_by_hand_is_adopted(empty_database: str) -> None:
    seed_sql = migrations()[0].sql
    async with await psycopg.AsyncConnection.connect(empty_database, autocommit=True) as conn:
        await conn.execute(seed_sql)
        await conn.execute(
            "INSERT INTO events (aggregate_id, event_type, payload, version)"
            " VALUES ('user_seed', 'OrderCreated', '{}', 1)"
        )
    await migrate(empty_database)
    async with await psycopg.AsyncConnection.connect(empty_database) as conn:
        cursor = await conn.execute("SELECT event_id IS NOT NULL, metadata FROM events")
        assert await cursor.fetchall() == [(True, {})]


async def test_an_unmigrated_database_is_reported_behind(empty_database: str) -> None:
    with pytest.raises(SchemaNotCurrent, match="schema is at version 0, this release needs"):
        await check_database(empty_database)


async def test_an_applied_migration_that_changed_is_refused(empty_database: str) -> None:
    await migrate(empty_database)
    async with await psycopg.AsyncConnection.connect(empty_database, autocommit=True) as conn:
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
    with pytest.raises(MigrationChanged, match="0001_create_events changed"):
        await migrate(empty_database)


def run_cli(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CQRS_DEMO, *args],
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_migrate_prints_what_it_applied(empty_database: str) -> None:
    first = run_cli("migrate", CQRS_DATABASE_URL=empty_database)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [f"applied {m.name}" for m in migrations()]
    again = run_cli("migrate", CQRS_DATABASE_URL=empty_database)
    assert again.stdout == f"nothing to apply: schema at version {latest_schema_version()}\n"


def test_check_reports_ok_or_why_not(empty_database: str) -> None:
    behind = run_cli("check", CQRS_DATABASE_URL=empty_database)
    assert behind.returncode == 1
    assert "schema is at version 0" in behind.stderr
    run_cli("migrate", CQRS_DATABASE_URL=empty_database)
    current = run_cli("check", CQRS_DATABASE_URL=empty_database)
    assert current.returncode == 0
    assert current.stdout.startswith("ok: postgres@127.0.0.1:")


def test_check_names_an_unreachable_database() -> None:
    result = run_cli("check", CQRS_DATABASE_URL="postgresql://nobody@127.0.0.1:1/cqrs_events")
    assert result.returncode == 1
    assert "cannot connect to the database" in result.stderr


def test_a_bad_setting_stops_with_one_line_naming_it() -> None:
    result = run_cli("serve", CQRS_DATABASE_URL="postgresql://x@127.0.0.1/db", CQRS_PORT="eighty")
    assert result.returncode == 78
    assert result.stderr == "cqrs-demo: CQRS_PORT='eighty' is invalid: must be a whole number\n"
