"""Rebuild: a projection built afresh into tables of its own while the live ones answer,
swapped in in one transaction; an interrupted rebuild resumes, or is dropped cleanly."""

import asyncio
import signal
import time
from pathlib import Path

import psycopg
import pytest

from tests.projector.support import (
    Writers,
    audit,
    checkpoints,
    finished,
    insert_backlog,
    rebuild,
    running_projector,
    wait_for_progress,
    wait_until_caught_up,
)

pytestmark = pytest.mark.anyio


def rows(database_url: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(statement).fetchall()


async def test_a_rebuild_under_appends_replaces_wrong_rows_and_the_projector_goes_on(
    fresh_database_url: str, tmp_path: Path
) -> None:
    async with Writers(fresh_database_url) as writers:
        await writers.write(300)
        with running_projector(fresh_database_url, tmp_path) as projector:
            wait_until_caught_up(fresh_database_url)
            # a read model gone wrong (a bug since fixed, a hand edit)
            with psycopg.connect(fresh_database_url) as conn:
                conn.execute("UPDATE orders SET quantity = 999")
                conn.execute("UPDATE user_order_summaries SET open_total = -1")
            appending = asyncio.create_task(writers.write(400, concurrency=4))
            for name in ("orders", "user_order_summaries"):
                code, out, err = await asyncio.to_thread(
                    finished, rebuild(fresh_database_url, name, "--batch-size", "50")
                )
                assert code == 0, err
                assert f"swapped in: {name} rebuilt at position" in out
            await appending
            wait_until_caught_up(fresh_database_url)
            assert projector.process.poll() is None
    assert audit(fresh_database_url) > 300
    indexes = rows(
        fresh_database_url,
        "SELECT indexname FROM pg_indexes WHERE tablename IN ('orders', 'user_order_summaries',"
        " 'user_order_summary_open_orders') ORDER BY 1",
    )
    assert indexes == [
        ("orders_by_user_and_status",),
        ("orders_pkey",),
        ("user_order_summaries_pkey",),
        ("user_order_summary_open_orders_pkey",),
    ]
    assert rows(
        fresh_database_url,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'projection_rebuild'",
    ) == [(0,)]
    assert rows(
        fresh_database_url, "SELECT projection, generation FROM projection_checkpoints ORDER BY 1"
    ) == [("orders", 1), ("user_order_summaries", 1)]


async def test_an_interrupted_rebuild_resumes_or_is_dropped(
    fresh_database_url: str, tmp_path: Path
) -> None:
    insert_backlog(fresh_database_url, 20_000)
    with running_projector(fresh_database_url, tmp_path):
        wait_until_caught_up(fresh_database_url, timeout=60)
        applied = 0
        for ending in (signal.SIGINT, signal.SIGKILL):
            # One event per transaction: about 13 s for the 20,000 (at 5, this build took 3 s,
            # and a test process held up that long on a busy machine saw it finish first).
            interrupted = rebuild(fresh_database_url, "orders", "--batch-size", "1")
            wait_for_progress(fresh_database_url, "orders:rebuild", applied + 500)
            interrupted.send_signal(ending)
            code, _, err = finished(interrupted)
            assert code == (130 if ending == signal.SIGINT else -9)
            if ending == signal.SIGINT:
                assert "run the same command to resume it, or with --drop" in err
            kept = checkpoints(fresh_database_url)["orders:rebuild"]
            assert applied < kept[1] < 20_000
            assert kept[3] == "rebuilding"
            applied = kept[1]
        code, out, err = finished(rebuild(fresh_database_url, "orders", "--batch-size", "2000"))
        assert code == 0, err
        assert "20000 events applied" in out
        assert "rebuilding orders:" in err  # progress, from where it was, not from 0
        first_progress = int(err.split("rebuilding orders: ")[1].split(" ")[0].replace(",", ""))
        assert first_progress > kept[1]

        dropped = rebuild(fresh_database_url, "user_order_summaries", "--batch-size", "1")
        wait_for_progress(fresh_database_url, "user_order_summaries:rebuild", 500)
        dropped.send_signal(signal.SIGKILL)
        finished(dropped)
        assert "user_order_summaries:rebuild" in checkpoints(fresh_database_url)
        code, out, _ = finished(rebuild(fresh_database_url, "user_order_summaries", "--drop"))
        assert code == 0
        assert "user_order_summaries:rebuild" not in checkpoints(fresh_database_url)
        assert rows(
            fresh_database_url,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'projection_rebuild'",
        ) == [(0,)]
        wait_until_caught_up(fresh_database_url)
    assert audit(fresh_database_url) == 20_000


async def test_a_drop_stopped_while_it_waits_for_a_running_rebuild_drops_nothing(
    fresh_database_url: str,
) -> None:
    insert_backlog(fresh_database_url, 20_000)
    running = rebuild(fresh_database_url, "orders", "--batch-size", "1")
    try:
        wait_for_progress(fresh_database_url, "orders:rebuild", 100)
        dropping = rebuild(fresh_database_url, "orders", "--drop")
        # Both hold a session for the rebuild's lock: the drop is waiting for it.
        lock_sessions = (
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = 'cqrs-demo projector lock orders:rebuild'"
        )
        deadline = time.monotonic() + 30
        while rows(fresh_database_url, lock_sessions) != [(2,)]:
            assert time.monotonic() < deadline, "the drop never waited for the lock"
            time.sleep(0.05)
        dropping.send_signal(signal.SIGINT)
        code, _, err = finished(dropping)
        assert code == 130, err
        assert "stopped by SIGINT: the rebuild of orders was not dropped" in err
        assert checkpoints(fresh_database_url)["orders:rebuild"][3] == "rebuilding"
    finally:
        running.kill()
        finished(running)  # its pipes closed
