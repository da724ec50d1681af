"""The floor projector of the benchmark (``tests/bench/floor_projector.py``) refuses what it
cannot project: a batch holding an event other than OrderCreated is not written, its
checkpoints stay where they were, and the process exits naming the reason."""

import os
import subprocess
import sys

import psycopg

from tests.bench.read_history import insert_history
from tests.support import REPO

FLOOR = [sys.executable, "-m", "tests.bench.floor_projector"]


def floor(url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "CQRS_DATABASE_URL": url, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [*FLOOR, *arguments], env=environ, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_batch_with_a_cancel_is_refused_and_nothing_of_it_is_written(
    fresh_database_url: str,
) -> None:
    history = insert_history(fresh_database_url, 400)  # a cancel for every four creates
    result = floor(fresh_database_url, "rows")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "holds an event other than OrderCreated" in result.stderr, result.stderr
    with psycopg.connect(fresh_database_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM user_order_summaries),"
            " (SELECT count(*) FROM user_order_summary_open_orders),"
            " (SELECT count(*) FROM events),"
            " (SELECT array_agg(events_applied ORDER BY projection) FROM projection_checkpoints)"
        ).fetchone()
    assert row == (0, 0, 0, history.events, [0, 0])


def test_an_unknown_mode_is_refused_with_its_usage(fresh_database_url: str) -> None:
    result = floor(fresh_database_url, "everything")
    assert result.returncode == 1
    assert "usage: python -m tests.bench.floor_projector rows|pass-over" in result.stderr
