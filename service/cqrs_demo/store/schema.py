"""Applying the numbered migrations and the function files, and checking the schema."""

from dataclasses import dataclass

import psycopg

from cqrs_demo.store.errors import MigrationChanged, SchemaNotCurrent, StoreUnavailable
from cqrs_demo.store.pool import Connection, Database
from cqrs_demo.store.sql import (
    DatabaseFunction,
    Migration,
    database_functions,
    latest_schema_version,
    migrations,
    query,
)

# Held for the whole run of ``migrate``, so two hosts migrating at once take turns:
# the second finds the work done. The value spells "cqrsdemo".
MIGRATION_LOCK_KEY = 0x6371727364656D6F


@dataclass(frozen=True, slots=True)
class AppliedFunction:
    """A function file that ``migrate`` ran; ``replaced`` is the checksum of the text it
    replaced, ``None`` when none was recorded."""

    function: DatabaseFunction
    replaced: str | None


@dataclass(frozen=True, slots=True)
class NewerFunction:
    """A function whose recorded text differs from this release's but was applied by a
    release at a later schema version: ``migrate`` leaves it as it is."""

    name: str
    schema_version: int


@dataclass(frozen=True, slots=True)
class Migrated:
    """What one run of ``migrate`` did, in order: nothing at all when everything is current."""

    migrations: tuple[Migration, ...] = ()
    functions: tuple[AppliedFunction, ...] = ()
    left_to_newer: tuple[NewerFunction, ...] = ()


async def migrate(conninfo: str) -> Migrated:
    """Apply every migration not yet recorded, each in its own transaction; then run every
    function file whose text differs from the one recorded (or is not recorded), each in a
    transaction with its new record. Return what was done.

    Idempotent and safe to run from several hosts at once (one advisory lock for the whole
    run). A function last applied by a release at a later schema version is left alone.
    Raises ``MigrationChanged`` when an applied migration differs from the shipped file,
    ``StoreUnavailable`` when the database cannot be reached, and the driver's error when a
    migration or a function fails (that one is rolled back; the ones before it stay applied).
    """
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as error:
        raise StoreUnavailable(f"cannot connect to the database: {error}") from error
    async with conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
        applied = await _apply_migrations(conn)
        functions, newer = await _apply_functions(conn)
        await conn.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])
    return Migrated(applied, functions, newer)


async def _apply_migrations(conn: Connection) -> tuple[Migration, ...]:
    await conn.execute(query("create_schema_migrations"))
    applied = await _applied_checksums(conn)
    for migration in migrations():
        recorded = applied.get(migration.version, migration.checksum)
        if recorded != migration.checksum:
            raise MigrationChanged(
                f"migration {migration.name} changed after it was applied: sha256"
                f" {migration.checksum[:12]} shipped, {recorded[:12]} recorded"
            )
    pending = tuple(m for m in migrations() if m.version not in applied)
    for migration in pending:
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                query("record_migration"),
                {
                    "version": migration.version,
                    "name": migration.name,
                    "checksum": migration.checksum,
                },
            )
    return pending


async def _apply_functions(
    conn: Connection,
) -> tuple[tuple[AppliedFunction, ...], tuple[NewerFunction, ...]]:
    ours = latest_schema_version()
    recorded = await _recorded_functions(conn)
    applied: list[AppliedFunction] = []
    newer: list[NewerFunction] = []
    for function in database_functions():
        checksum, version = recorded.get(function.name, (None, 0))
        if checksum == function.checksum:
            continue
        if version > ours:
            newer.append(NewerFunction(function.name, version))
            continue
        async with conn.transaction():
            await conn.execute(function.sql)
            await conn.execute(
                query("record_function"),
                {"name": function.name, "checksum": function.checksum, "schema_version": ours},
            )
        applied.append(AppliedFunction(function, checksum))
    return tuple(applied), tuple(newer)


async def _recorded_functions(conn: Connection) -> dict[str, tuple[str, int]]:
    """Each recorded function's checksum and the schema version of the release that ran it."""
    cursor = await conn.execute(query("applied_functions"))
    return {
        str(name): (str(checksum), int(str(version)))
        for name, checksum, version in await cursor.fetchall()
    }


async def _applied_checksums(conn: Connection) -> dict[int, str]:
    cursor = await conn.execute(query("applied_migrations"))
    return {int(str(version)): str(checksum) for version, _, checksum in await cursor.fetchall()}


async def schema_version(conn: Connection) -> int:
    """The schema version recorded in ``schema_migrations`` (0 before the first migration)."""
    try:
        cursor = await conn.execute(query("schema_version"))
    except psycopg.errors.UndefinedTable:
        return 0
    row = await cursor.fetchone()
    assert row is not None
    return int(str(row[0]))


def _require_current(version: int) -> int:
    needed = latest_schema_version()
    if version < needed:
        raise SchemaNotCurrent(
            f"database schema is at version {version}, this release needs {needed}: "
            "run 'cqrs-demo migrate'"
        )
    return version


async def check_schema(database: Database) -> int:
    """Return the schema version; raise ``SchemaNotCurrent`` when it is behind this release.

    A schema ahead of this release is accepted: migrations only add, so the previous release
    keeps working after an upgrade is rolled back.
    """
    async with database.connection() as conn:
        version = await schema_version(conn)
    return _require_current(version)


async def check_database(conninfo: str) -> int:
    """Like ``check_schema`` over one new connection: for ``cqrs-demo check``."""
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as error:
        raise StoreUnavailable(f"cannot connect to the database: {error}") from error
    async with conn:
        version = await schema_version(conn)
    return _require_current(version)
