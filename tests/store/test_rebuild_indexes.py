"""A rebuild's tables are written without the live tables' secondary indexes, and get them,
named as the live ones, before they are swapped in; a resumed rebuild builds only those it
lacks."""

import psycopg
import pytest

from cqrs_demo.store.rebuild import open_rebuild

pytestmark = pytest.mark.anyio

INDEXES = """
SELECT schemaname || '.' || indexname FROM pg_indexes
WHERE tablename = 'orders' AND schemaname IN ('public', 'projection_rebuild') ORDER BY 1
"""


def indexes(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [str(row[0]) for row in conn.execute(INDEXES)]


async def test_the_rebuilt_tables_get_the_secondary_indexes_before_the_swap(
    fresh_database_url: str,
) -> None:
    live = ["public.orders_by_user_and_status", "public.orders_pkey"]
    assert indexes(fresh_database_url) == live
    rebuilding, pools = await open_rebuild(fresh_database_url, "orders")
    try:
        await rebuilding.start(afresh=True)
        assert indexes(fresh_database_url) == sorted([*live, "projection_rebuild.orders_pkey"])
        assert await rebuilding.index() == 1
        assert await rebuilding.index() == 0  # resumed after it was built: none again
        rebuilt = [name.replace("public.", "projection_rebuild.") for name in live]
        assert indexes(fresh_database_url) == sorted([*live, *rebuilt])
        await rebuilding.swap()
        assert indexes(fresh_database_url) == live
    finally:
        for pool in pools:
            await pool.close()
