"""Applying the numbered migrations, and checking that the schema is current."""

import psycopg

from cqrs_demo.store.errors import MigrationChanged, SchemaNotCurrent, StoreUnavailable
from cqrs_demo.store.pool import Connection, Database
from cqrs_demo.store.sql import Migration, latest_schema_version, migrations, query

# Held for the whole run of ``migrate``, so two hosts migrating at once take turns:
# the second finds the work done. The value spells "cqrsdemo".
MIGRATION_LOCK_KEY = 0x6371727364656D6F


async def migrate(conninfo: str) -> list[Migration]:
    """Apply every migration not yet recorded, each in its own transaction; return them.

    Idempotent and safe to run from several hosts at once. Raises ``MigrationChanged`` when
    an applied migration differs from the shipped file, ``StoreUnavailable`` when the
    database cannot be reached, and the driver's error when a migration fails (that
    migration is rolled back; the ones before it stay applied).
    """
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as error:
        raise StoreUnavailable(f"cannot connect to the database: {error}") from error
    async with conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
        await conn.execute(query("create_schema_migrations"))
        applied = await _applied_checksums(conn)
        pending = [m for m in migrations() if m.version not in applied]
        for migration in migrations():
            if migration.version in applied and applied[migration.version] != migration.checksum:
                raise MigrationChanged(f"migration {migration.name} changed after it was applied")
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
        await conn.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])
    return pending


async def _applied_checksums(conn: Connection) -> dict[int, str]:
    cursor = await conn.execute(query("applied_migrations"))
    return {int(str(version)): str(checksum) for version, _, checksum in await cursor.fetchall()}


async def _schema_version(conn: Connection) -> int:
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
        version = await _schema_version(conn)
    return _require_current(version)


async def check_database(conninfo: str) -> int:
    """Like ``check_schema`` over one new connection: for ``cqrs-demo check``."""
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as error:
        raise StoreUnavailable(f"cannot connect to the database: {error}") from error
    async with conn:
        version = await _schema_version(conn)
    return _require_current(version)
