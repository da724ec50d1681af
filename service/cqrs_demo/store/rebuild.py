"""Rebuilding a projection: its tables built afresh from the start of the feed, under the
same names in the schema ``projection_rebuild``, while the live ones keep answering, then
swapped in, in one transaction.

The rebuild's checkpoint is ``NAME:rebuild`` (state ``rebuilding``), written with its rows
in the same transaction as for the live projection, so an interrupted rebuild resumes where
it was, or is dropped (tables and checkpoint) cleanly. Its read models are the same
statements on connections whose ``search_path`` finds ``projection_rebuild`` first.

The rebuilt tables are written without the live tables' secondary indexes (those that back
no constraint: a rebuild needs only the primary keys it upserts and loads by) and get them
in one sort each once the feed is read (``index``), before the swap: maintaining a b-tree
of random keys row by row cost two thirds of the time of writing ``orders``.
"""

import psycopg
from psycopg import sql

from cqrs_demo.ports import Checkpoint, Position
from cqrs_demo.store.pool import Connection, Database
from cqrs_demo.store.projections import PostgresReadModels
from cqrs_demo.store.sql import query

SCHEMA = "projection_rebuild"
# Each projection's tables, as migrations 0007 and 0008 create them in public.
TABLES: dict[str, tuple[str, ...]] = {
    "orders": ("orders",),
    "user_order_summaries": ("user_order_summaries", "user_order_summary_open_orders"),
}
# DDL on tables named by the program (never by input): identifiers cannot be parameters.
_CREATE = sql.SQL("CREATE TABLE {rebuilt} (LIKE {live} INCLUDING ALL)")
_DROP = sql.SQL("DROP TABLE IF EXISTS {table}")
_MOVE = sql.SQL("ALTER TABLE {rebuilt} SET SCHEMA public")
_RENAME = sql.SQL("ALTER INDEX {index} RENAME TO {name}")
_DROP_INDEX = sql.SQL("DROP INDEX {index}")
_CREATE_INDEX = sql.SQL("CREATE INDEX {name} ON {rebuilt} {definition}")


class RebuildRefused(Exception):
    """A rebuild cannot be swapped in (it is stopped) or was not found; nothing changed."""


def rebuild_name(projection: str) -> str:
    """The checkpoint of ``projection``'s rebuild."""
    return f"{projection}:rebuild"


def rebuild_conninfo(conninfo: str) -> str:
    """``conninfo`` for connections that find the rebuild's tables first."""
    return psycopg.conninfo.make_conninfo(conninfo, options=f"-c search_path={SCHEMA},public")


class PostgresRebuild:
    """Rebuilding ``projection``: ``database`` on the public tables, ``read_models`` on the
    rebuild's. Every method raises ``StoreUnavailable`` or ``StoreError`` (``Database``)."""

    def __init__(self, database: Database, rebuild_database: Database, projection: str) -> None:
        self._database = database
        self.projection = projection
        self.name = rebuild_name(projection)
        self.tables = TABLES[projection]
        self.read_models = PostgresReadModels(rebuild_database)

    async def start(self, *, afresh: bool) -> Checkpoint:
        """The rebuild's checkpoint: the one there is (to resume) unless ``afresh``, else
        new empty tables and a checkpoint at the start of the feed, made in one
        transaction."""
        if not afresh:
            found = await self.read_models.checkpoint_if_any(self.name)
            if found is not None:
                return found
        async with self._database.connection() as conn, conn.transaction():
            await self._drop(conn)
            for table in self.tables:
                await conn.execute(
                    _CREATE.format(
                        rebuilt=sql.Identifier(SCHEMA, table), live=sql.Identifier("public", table)
                    )
                )
            await conn.execute(query("projection_rebuild_start"), {"projection": self.name})
            for schema, _, index, _ in await self._indexes(conn, constraints=False):
                if schema == SCHEMA:
                    await conn.execute(_DROP_INDEX.format(index=sql.Identifier(SCHEMA, index)))
        checkpoint = await self.read_models.checkpoint_if_any(self.name)
        assert checkpoint is not None
        return checkpoint

    async def index(self) -> int:
        """Give the rebuilt tables each secondary index of the live ones they lack (a
        resumed rebuild may have some), named as the live one (in their own schema); how
        many were built."""
        async with self._database.connection() as conn:
            found = await self._indexes(conn, constraints=False)
            rebuilt = {
                (table, definition) for schema, table, _, definition in found if schema == SCHEMA
            }
            missing = [
                (table, name, definition)
                for schema, table, name, definition in found
                if schema == "public" and (table, definition) not in rebuilt
            ]
            for table, name, definition in missing:
                # The definition is the live index's own, read from the catalog (not input).
                statement = _CREATE_INDEX.format(
                    name=sql.Identifier(name),
                    rebuilt=sql.Identifier(SCHEMA, table),
                    definition=sql.SQL(definition),
                )
                await conn.execute(statement)
        return len(missing)

    async def skip_as_live(self) -> bool:
        """If the rebuild stopped at an event an operator skipped for the projection itself,
        skip it here too and go on; whether it did."""
        params = {"rebuild": self.name, "live": self.projection}
        async with self._database.connection() as conn:
            cursor = await conn.execute(query("projection_rebuild_skip"), params)
            return cursor.rowcount == 1

    async def remaining(self, after: Position) -> int:
        """How many events there are after ``after``."""
        params = {"transaction_id": str(after.transaction_id), "event_number": after.event_number}
        async with self._database.connection() as conn:
            cursor = await conn.execute(query("projection_remaining"), params)
            row = await cursor.fetchone()
        assert row is not None
        assert isinstance(row[0], int)
        return row[0]

    async def swap(self) -> Checkpoint:
        """Build the rebuilt tables' secondary indexes (``index``); then, in one
        transaction: wait for the live projector's batch in flight, replace the live tables
        by the rebuilt ones (their indexes renamed as the live ones were), and set the
        projection's checkpoint where the rebuild's was, one generation up. The live
        projector goes on from there (with the events written while the indexes were
        built). Raises ``RebuildRefused`` when the rebuild is stopped or there is none."""
        await self.index()
        params = {"live": self.projection, "rebuild": self.name}
        async with self._database.connection() as conn, conn.transaction():
            cursor = await conn.execute(query("projection_rebuild_lock"), params)
            states = {str(row[0]): str(row[1]) for row in await cursor.fetchall()}
            if states.get(self.name) != "rebuilding":
                found = states.get(self.name, "none")
                raise RebuildRefused(f"no rebuild of {self.projection} to swap in (state {found})")
            renames = await self._index_renames(conn)
            for table in self.tables:
                await conn.execute(_DROP.format(table=sql.Identifier("public", table)))
                await conn.execute(_MOVE.format(rebuilt=sql.Identifier(SCHEMA, table)))
            for index, name in renames:
                await conn.execute(
                    _RENAME.format(index=sql.Identifier("public", index), name=sql.Identifier(name))
                )
            cursor = await conn.execute(query("projection_rebuild_swapped"), params)
            row = await cursor.fetchone()
        assert row is not None
        position = Position(int(str(row[0])), int(str(row[1])))
        assert isinstance(row[2], int)
        assert isinstance(row[3], int)
        return Checkpoint(position, row[2], "running", generation=row[3])

    async def drop(self) -> None:
        """Drop the rebuild's tables and checkpoint, in one transaction (none there: no-op)."""
        async with self._database.connection() as conn, conn.transaction():
            await self._drop(conn)

    async def _drop(self, conn: Connection) -> None:
        for table in self.tables:
            await conn.execute(_DROP.format(table=sql.Identifier(SCHEMA, table)))
        await conn.execute(query("projection_rebuild_drop"), {"rebuild": self.name})

    async def _index_renames(self, conn: Connection) -> list[tuple[str, str]]:
        """(rebuilt index, live name) for each rebuilt index named otherwise than the live
        index of the same table and definition."""
        rows = await self._indexes(conn, constraints=True)
        live = {
            (table, definition): name
            for schema, table, name, definition in rows
            if schema == "public"
        }
        renames = []
        for schema, table, name, definition in rows:
            wanted = live.get((table, definition))
            if schema == SCHEMA and wanted is not None and wanted != name:
                renames.append((name, wanted))
        return renames

    async def _indexes(
        self, conn: Connection, *, constraints: bool
    ) -> list[tuple[str, str, str, str]]:
        """(schema, table, index, definition) of the live and rebuilt tables' indexes; with
        those that back a constraint (primary keys) only if ``constraints``."""
        params = {"tables": list(self.tables), "constraints": constraints}
        cursor = await conn.execute(query("projection_rebuild_indexes"), params)
        return [
            (str(schema), str(table), str(name), str(definition))
            for schema, table, name, definition in await cursor.fetchall()
        ]


async def open_rebuild(conninfo: str, projection: str) -> tuple[PostgresRebuild, list[Database]]:
    """A ``PostgresRebuild`` of ``projection`` on its own small pools, and the pools (to
    close)."""
    live = Database(conninfo, min_size=1, max_size=2, timeout=10, custom_plans=True)
    rebuilt = Database(
        rebuild_conninfo(conninfo),
        min_size=1,
        max_size=2,
        timeout=10,
        custom_plans=True,
        derived_commits=True,  # the batches; the swap is the live pool's, flushed
    )
    await live.open(wait_seconds=10)
    try:
        await rebuilt.open(wait_seconds=10)
    except BaseException:
        await live.close()
        raise
    return PostgresRebuild(live, rebuilt, projection), [live, rebuilt]
