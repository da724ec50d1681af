"""The projector's and a rebuild's loads of read-model rows by key use the tables' indexes
however the tables grew: statements that first ran (and were prepared) while the tables
were empty must not keep a plan that reads them whole. Such a plan made every batch of the
live projector slower than the one before (``docs/performance.md``, "Freshness")."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import psycopg
import pytest

from cqrs_demo.bootstrap import create_projector
from cqrs_demo.domain.projections import RowKey, Table
from cqrs_demo.ports import ReadModels
from cqrs_demo.settings import load_settings
from cqrs_demo.store.rebuild import SCHEMA, open_rebuild

pytestmark = pytest.mark.anyio

ROWS = 20_000
# Each table's rows, made in SQL from generate_series's i.
FILL = {
    "orders": "'o-' || i, 'u-' || i % 500, 'p', 1, 1.5, 'placed', now(), NULL, NULL",
    "user_order_summaries": "'u-' || i, 1, 0, 1, 1.5, now()",
    "user_order_summary_open_orders": "'o-' || i, 'u-' || i % 500, 1.5",
}
KEY_OF: dict[str, Table] = {
    "orders": "order",
    "user_order_summaries": "user_summary",
    "user_order_summary_open_orders": "open_order",
}
STATISTICS_SECONDS = 5.0  # an idle backend reports its counters within about a second

Opened = Callable[[str], AbstractAsyncContextManager[tuple[ReadModels, str, Sequence[str]]]]


@asynccontextmanager
async def projectors_read_models(url: str) -> AsyncIterator[tuple[ReadModels, str, Sequence[str]]]:
    """The read models as ``cqrs-demo project`` wires them: all three tables, in public."""
    projector = create_projector(load_settings({"CQRS_DATABASE_URL": url}))
    await projector.start()
    try:
        yield projector.parts.read_models, "public", tuple(FILL)
    finally:
        await projector.stop()


@asynccontextmanager
async def rebuilds_read_models(url: str) -> AsyncIterator[tuple[ReadModels, str, Sequence[str]]]:
    """The read models of a rebuild of user_order_summaries: its two new, empty tables."""
    rebuilding, pools = await open_rebuild(url, "user_order_summaries")
    try:
        await rebuilding.start(afresh=True)
        yield rebuilding.read_models, SCHEMA, rebuilding.tables
    finally:
        for pool in pools:
            await pool.close()


@pytest.mark.parametrize(
    "opened", [projectors_read_models, rebuilds_read_models], ids=["projector", "rebuild"]
)
async def test_loads_by_key_use_the_index_after_the_tables_grew_from_empty(
    fresh_database_url: str, opened: Opened
) -> None:
    async with opened(fresh_database_url) as (read_models, schema, tables):
        keys: set[RowKey] = {
            (KEY_OF[table], "u-7" if table == "user_order_summaries" else "o-7") for table in tables
        }
        for _ in range(12):  # past psycopg's prepare threshold (5), then the server's (5)
            assert set((await read_models.load_rows(keys)).values()) == {None}
        async with await psycopg.AsyncConnection.connect(
            fresh_database_url, autocommit=True
        ) as conn:
            for table in tables:
                await conn.execute(
                    f"INSERT INTO {schema}.{table} SELECT {FILL[table]}"
                    f" FROM generate_series(1, {ROWS}) AS i"
                )
            before = await _scans(conn, schema, tables, at_least=None)
            for _ in range(3):
                assert None not in (await read_models.load_rows(keys)).values()
            after = await _scans(conn, schema, tables, at_least=before)
    assert {table: after[table][0] - before[table][0] for table in tables} == dict.fromkeys(
        tables, 0
    ), f"sequential scans in the loads after the tables grew; (seq, idx) {before} -> {after}"


async def _scans(
    conn: psycopg.AsyncConnection[tuple[object, ...]],
    schema: str,
    tables: Sequence[str],
    *,
    at_least: dict[str, tuple[int, int]] | None,
) -> dict[str, tuple[int, int]]:
    """Each table's (sequential scans, index scans) as the statistics report them: once
    every table shows three scans more than ``at_least`` (the loads', reported), or after
    a second of quiet when ``at_least`` is None."""
    deadline = time.monotonic() + STATISTICS_SECONDS
    while True:
        await asyncio.sleep(1.2 if at_least is None else 0.2)
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        cursor = await conn.execute(
            "SELECT relname, seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables"
            " WHERE schemaname = %s AND relname = ANY(%s)",
            (schema, list(tables)),
        )
        found = {str(name): (int(seq), int(idx)) for name, seq, idx in await cursor.fetchall()}  # type: ignore[call-overload]
        if at_least is None or all(
            sum(found[table]) >= sum(at_least[table]) + 3 for table in tables
        ):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"the loads' scans were not reported: {at_least} -> {found}")
