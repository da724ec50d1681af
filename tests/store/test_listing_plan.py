"""A page of a user's orders costs its own rows, however deep in the list and whatever the
mix of statuses: the listing walks orders_by_user_and_status, one range per status, and
merges them (the table has no other index by user since migration 0009)."""

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from cqrs_demo.store.sql import query

ORDERS = 3_000  # one user's: all cancelled but every 500th
FETCH = 11


def plan(url: str, **params: object) -> dict[str, object]:
    with psycopg.connect(url) as conn:
        explain = b"EXPLAIN (ANALYZE, FORMAT JSON) " + query("read_user_orders")
        row = conn.execute(explain, {"projection": "orders", "fetch": FETCH, **params}).fetchone()
    assert row is not None
    found = row[0] if isinstance(row[0], list) else json.loads(str(row[0]))
    return dict(found[0]["Plan"])


def nodes(node: dict[str, object]) -> list[dict[str, object]]:
    children = node.get("Plans", [])
    assert isinstance(children, list)
    return [node, *(found for child in children for found in nodes(child))]


@pytest.fixture(scope="module")
def deep_user(database_url: str) -> tuple[str, datetime]:
    user = "plan-user"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO orders (order_id, user_id, product_id, quantity, total_price, status,"
            " placed_at) SELECT %(user)s || ':' || i, %(user)s, 'p', 1, 1.5,"
            " CASE WHEN i %% 500 = 0 THEN 'placed' ELSE 'cancelled' END,"
            " %(start)s::timestamptz + i * interval '1 second' FROM generate_series(1, %(n)s) i",
            {"user": user, "start": start, "n": ORDERS},
        )
        conn.execute("ANALYZE orders")
    return user, start


@pytest.mark.parametrize("depth", [0, ORDERS // 2, ORDERS - 20])
def test_a_page_reads_at_most_its_rows_per_status(
    database_url: str, deep_user: tuple[str, datetime], depth: int
) -> None:
    user, start = deep_user
    after = start + timedelta(seconds=ORDERS - depth + 1)
    top = plan(
        database_url,
        user_id=user,
        after_placed_at=None if depth == 0 else after,
        after_order_id=None if depth == 0 else f"{user}:{ORDERS - depth + 1}",
    )
    scans = [node for node in nodes(top) if "Scan" in str(node["Node Type"])]
    orders_scans = [node for node in scans if node.get("Relation Name") == "orders"]
    assert [node["Index Name"] for node in orders_scans] == ["orders_by_user_and_status"] * 2
    assert all(node["Node Type"] == "Index Scan" for node in orders_scans), orders_scans
    read = sum(int(str(node["Actual Rows"])) for node in orders_scans)
    assert 0 < read <= 2 * FETCH, f"{read} rows read for a page of {FETCH}"
    assert not [node for node in nodes(top) if node["Node Type"] == "Sort" and node is not top]
