"""Two projectors on one database (two hosts): exactly one is active per projection, and
the other takes over within seconds when the first dies."""

import time
from pathlib import Path

import psycopg
import pytest

from tests.projector.support import Writers, audit, running_projector, wait_until_caught_up

pytestmark = pytest.mark.anyio

LOCK_HOLDERS = """
SELECT a.application_name
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.classid = 1885433460 AND l.granted
ORDER BY 1
"""


def lock_holders(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return [str(row[0]) for row in conn.execute(LOCK_HOLDERS).fetchall()]


async def test_one_projector_is_active_and_the_other_takes_over_after_a_kill(
    fresh_database_url: str, tmp_path: Path
) -> None:
    async with Writers(fresh_database_url) as writers:
        with running_projector(fresh_database_url, tmp_path) as first:
            first.wait_until_holding()
            with running_projector(fresh_database_url, tmp_path) as second:
                await writers.write(200)
                wait_until_caught_up(fresh_database_url)
                time.sleep(1.5)  # the second has tried the locks since
                assert "took the lock" not in second.log()
                assert lock_holders(fresh_database_url) == [
                    "cqrs-demo projector lock orders",
                    "cqrs-demo projector lock user_order_summaries",
                ]
                first.kill()
                killed = time.monotonic()
                second.wait_until_holding(timeout=5)
                took_over = time.monotonic() - killed
                await writers.write(200)
                wait_until_caught_up(fresh_database_url)
    assert took_over < 3
    assert audit(fresh_database_url) > 250


async def test_a_projector_whose_lock_connection_is_cut_gives_way_to_the_other(
    fresh_database_url: str, tmp_path: Path
) -> None:
    async with Writers(fresh_database_url) as writers:
        with running_projector(fresh_database_url, tmp_path) as first:
            first.wait_until_holding()
            with running_projector(fresh_database_url, tmp_path) as second:
                with psycopg.connect(fresh_database_url, autocommit=True) as conn:
                    # the first projector's: the older of the two lock connections of orders
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = 'cqrs-demo projector lock orders'"
                        " ORDER BY backend_start LIMIT 1"
                    )
                second.wait_for_log(r"projection orders: took the lock", timeout=5)
                first.wait_for_log(r"WARNING .*projection orders: lost the lock", timeout=5)
                await writers.write(200)
                wait_until_caught_up(fresh_database_url)
                time.sleep(1.5)
                holders = lock_holders(fresh_database_url)
                assert holders.count("cqrs-demo projector lock orders") == 1
                assert first.process.poll() is None
                assert "user_order_summaries: took the lock" not in second.log()
    assert audit(fresh_database_url) > 100
