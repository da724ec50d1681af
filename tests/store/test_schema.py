"""Migrations: applied once, in order, recorded; safe to run twice and from two places."""

import asyncio
import os
import subprocess

import psycopg
import pytest

from cqrs_demo.localdb import LocalPostgres
from cqrs_demo.store.errors import MigrationChanged, SchemaNotCurrent
from cqrs_demo.store.schema import (
    MIGRATION_LOCK_KEY,
    Migrated,
    NewerFunction,
    check_database,
    migrate,
)
from cqrs_demo.store.sql import (
    DatabaseFunction,
    database_functions,
    latest_schema_version,
    migrations,
)
from tests.races import wait_for_sessions
from tests.support import CQRS_DEMO

pytestmark = pytest.mark.anyio
WAITING_FOR_THE_MIGRATION_LOCK = "wait_event_type = 'Lock' AND wait_event = 'advisory'"
# A text of refuse_event_change other than the shipped one, as an older or newer release's.
CHANGED_BODY = "\nBEGIN\n    RAISE EXCEPTION 'another text';\nEND\n"


def body_of(function: DatabaseFunction) -> str:
    """The body of the function's file, between its dollar quotes: what pg_proc keeps."""
    _, body, _ = function.sql.decode().split("$$")
    return body


async def function_body(conninfo: str, name: str) -> str:
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        cursor = await conn.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [name])
        [(body,)] = await cursor.fetchall()
    assert isinstance(body, str)
    return body


async def recorded_functions(conninfo: str) -> set[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        cursor = await conn.execute("SELECT name, checksum, schema_version FROM schema_functions")
        return set(await cursor.fetchall())


async def replace_refuse_event_change(conninfo: str, *, checksum: str, schema_version: int) -> None:
    """Give refuse_event_change another text, recorded as ``checksum`` by a release at
    ``schema_version``: the state another release's ``migrate`` leaves behind."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(
            "CREATE OR REPLACE FUNCTION refuse_event_change() RETURNS trigger"
            f" LANGUAGE plpgsql AS $${CHANGED_BODY}$$"
        )
        await conn.execute(
            "UPDATE schema_functions SET checksum = %s, schema_version = %s"
            " WHERE name = 'refuse_event_change'",
            [checksum, schema_version],
        )


@pytest.fixture
def empty_database(postgres: LocalPostgres, request: pytest.FixtureRequest) -> str:
    name = f"schema_{request.node.name.lower().replace('[', '_').rstrip(']')}_{os.getpid()}"
    postgres.create_database(name[:63])
    return postgres.url(name[:63])


async def test_the_shipped_migrations_are_numbered_without_gaps() -> None:
    assert [m.version for m in migrations()] == list(range(1, latest_schema_version() + 1))
    assert migrations()[0].name == "0001_create_events"


async def test_migrate_applies_everything_once(empty_database: str) -> None:
    first = await migrate(empty_database)
    assert [m.name for m in first.migrations] == [m.name for m in migrations()]
    assert [(f.function.name, f.replaced) for f in first.functions] == [
        (function.name, None) for function in database_functions()
    ]
    assert await migrate(empty_database) == Migrated()
    assert await check_database(empty_database) == latest_schema_version()


async def test_every_function_file_is_applied_and_recorded(empty_database: str) -> None:
    await migrate(empty_database)
    assert {f.name for f in database_functions()} == {"append_events", "refuse_event_change"}
    for function in database_functions():
        assert await function_body(empty_database, function.name) == body_of(function)
    assert await recorded_functions(empty_database) == {
        (f.name, f.checksum, latest_schema_version()) for f in database_functions()
    }


async def test_a_function_whose_text_changed_is_replaced_on_the_next_migrate(
    empty_database: str,
) -> None:
    # As after an upgrade whose file differs from the text the database holds: the old
    # text is in the database, and its checksum is the one recorded.
    await migrate(empty_database)
    await replace_refuse_event_change(empty_database, checksum="old", schema_version=6)
    migrated = await migrate(empty_database)
    assert migrated.migrations == ()
    assert [(f.function.name, f.replaced) for f in migrated.functions] == [
        ("refuse_event_change", "old")
    ]
    (shipped,) = (f for f in database_functions() if f.name == "refuse_event_change")
    assert await function_body(empty_database, shipped.name) == body_of(shipped)
    assert ("refuse_event_change", shipped.checksum, latest_schema_version()) in (
        await recorded_functions(empty_database)
    )
    assert await migrate(empty_database) == Migrated()


async def test_a_function_a_newer_release_applied_is_left_alone(empty_database: str) -> None:
    await migrate(empty_database)
    newer = latest_schema_version() + 1
    await replace_refuse_event_change(empty_database, checksum="newer", schema_version=newer)
    migrated = await migrate(empty_database)
    assert (migrated.functions, migrated.left_to_newer) == (
        (),
        (NewerFunction("refuse_event_change", newer),),
    )
    assert await function_body(empty_database, "refuse_event_change") == CHANGED_BODY


async def test_a_database_of_the_release_before_functions_gets_them_recorded(
    empty_database: str,
) -> None:
    # Schema 5 as the release before this change left it: no schema_functions table.
    await migrate(empty_database)
    async with await psycopg.AsyncConnection.connect(empty_database, autocommit=True) as conn:
        await conn.execute("DROP TABLE schema_functions")
        await conn.execute("DELETE FROM schema_migrations WHERE version = 6")
    migrated = await migrate(empty_database)
    assert [m.name for m in migrated.migrations] == ["0006_schema_functions"]
    assert [(f.function.name, f.replaced) for f in migrated.functions] == [
        (function.name, None) for function in database_functions()
    ]
    assert len(await recorded_functions(empty_database)) == len(database_functions())


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
    done = sorted([first, second], key=lambda migrated: len(migrated.migrations))
    assert done[0] == Migrated()
    assert len(done[1].migrations) == latest_schema_version()
    assert len(done[1].functions) == len(database_functions())
    async with await psycopg.AsyncConnection.connect(empty_database) as conn:
        cursor = await conn.execute("SELECT count(*) FROM schema_migrations")
        assert await cursor.fetchone() == (latest_schema_version(),)
    assert len(await recorded_functions(empty_database)) == len(database_functions())


async def test_two_migrations_at_once_replace_a_changed_function_once(
    empty_database: str,
) -> None:
    await migrate(empty_database)
    await replace_refuse_event_change(empty_database, checksum="old", schema_version=6)
    async with await psycopg.AsyncConnection.connect(empty_database, autocommit=True) as lock:
        await lock.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
        both = asyncio.gather(migrate(empty_database), migrate(empty_database))
        try:
            await wait_for_sessions(
                empty_database, 2, WAITING_FOR_THE_MIGRATION_LOCK, what="migrations waiting"
            )
        finally:
            await lock.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])
        runs = await both
    assert sorted(len(migrated.functions) for migrated in runs) == [0, 1]
    assert Migrated() in runs


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
        await conn.execute("UPDATE schema_migrations SET checksum = 'bad' WHERE version = 1")
    shipped = migrations()[0].checksum[:12]
    with pytest.raises(
        MigrationChanged,
        match=f"0001_create_events changed after it was applied: sha256 {shipped} shipped,"
        " bad recorded",
    ):
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
    assert first.stdout.splitlines() == [f"applied {m.name}" for m in migrations()] + [
        f"applied function {f.name}: sha256 {f.checksum[:12]}, was not recorded"
        for f in database_functions()
    ]
    again = run_cli("migrate", CQRS_DATABASE_URL=empty_database)
    assert again.stdout == (
        f"nothing to apply: schema at version {latest_schema_version()},"
        f" {len(database_functions())} functions as recorded\n"
    )


async def test_migrate_prints_a_replaced_function_and_one_left_to_a_newer_release(
    empty_database: str,
) -> None:
    await migrate(empty_database)
    await replace_refuse_event_change(empty_database, checksum="0123456789abcdef", schema_version=1)
    replaced = await asyncio.to_thread(run_cli, "migrate", CQRS_DATABASE_URL=empty_database)
    (shipped,) = (f for f in database_functions() if f.name == "refuse_event_change")
    assert replaced.stdout == (
        f"applied function refuse_event_change: sha256 {shipped.checksum[:12]}, was 0123456789ab\n"
    )
    newer = latest_schema_version() + 1
    await replace_refuse_event_change(empty_database, checksum="x", schema_version=newer)
    kept = await asyncio.to_thread(run_cli, "migrate", CQRS_DATABASE_URL=empty_database)
    assert kept.stdout.splitlines()[0] == (
        f"kept function refuse_event_change: applied by a release at schema version {newer},"
        f" this release is at {latest_schema_version()}"
    )


def test_check_reports_ok_or_why_not(empty_database: str) -> None:
    behind = run_cli("check", CQRS_DATABASE_URL=empty_database)
    assert behind.returncode == 1
    assert "schema is at version 0" in behind.stderr
    run_cli("migrate", CQRS_DATABASE_URL=empty_database)
    current = run_cli("check", CQRS_DATABASE_URL=empty_database)
    assert current.returncode == 0
    assert current.stdout.startswith("ok: postgres@127.0.0.1:")


def test_check_checks_the_read_database_too_naming_it(database_url: str) -> None:
    both = run_cli("check", CQRS_DATABASE_URL=database_url, CQRS_READ_DATABASE_URL=database_url)
    assert both.returncode == 0, both.stderr
    assert both.stdout.splitlines()[1].startswith("ok: queries read from postgres@127.0.0.1:")
    nowhere = "postgresql://nobody@127.0.0.1:1/cqrs_events"
    failed = run_cli("check", CQRS_DATABASE_URL=database_url, CQRS_READ_DATABASE_URL=nowhere)
    assert failed.returncode == 1
    assert failed.stderr.startswith(
        "cqrs-demo check: CQRS_READ_DATABASE_URL: cannot connect to the database:"
    )


def test_check_names_an_unreachable_database() -> None:
    result = run_cli("check", CQRS_DATABASE_URL="postgresql://nobody@127.0.0.1:1/cqrs_events")
    assert result.returncode == 1
    assert "cannot connect to the database" in result.stderr


def test_a_bad_setting_stops_with_one_line_naming_it() -> None:
    result = run_cli("serve", CQRS_DATABASE_URL="postgresql://x@127.0.0.1/db", CQRS_PORT="eighty")
    assert result.returncode == 78
    assert result.stderr == "cqrs-demo: CQRS_PORT='eighty' is invalid: must be a whole number\n"
