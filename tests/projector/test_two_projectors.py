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
