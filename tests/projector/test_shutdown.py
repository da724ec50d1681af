"""A stop while PostgreSQL answers nothing: bounded, and nothing applied twice or lost; the
projector's, and a rebuild's."""

import signal
import time
from pathlib import Path

import pytest

from cqrs_demo.localdb import LocalPostgres
from cqrs_demo.projector.stopping import STOP_GRACE_SECONDS
from tests.projector.support import (
    ProjectorProcess,
    audit,
    checkpoints,
    finished,
    insert_backlog,
    rebuild,
    running_projector,
    wait_for_progress,
    wait_until_caught_up,
)
from tests.support import frozen, new_database, wait_for_match

# The unit's TimeoutStopSec: systemd kills the projector if its stop takes longer.
UNIT_STOP_SECONDS = 15
BACKLOG = 100_000


def applied(url: str) -> int:
    return min(applied for _, applied, _, _ in checkpoints(url).values())


def test_a_stop_while_the_database_answers_nothing_ends_in_time_and_loses_nothing(
    tmp_path: Path,
) -> None:
    unit = Path(__file__).parents[2] / "systemd" / "cqrs-demo-projector.service"
    assert f"TimeoutStopSec={UNIT_STOP_SECONDS}s" in unit.read_text()
    with LocalPostgres() as postgres:
        url = new_database(postgres, "cqrs_events")
        insert_backlog(url, BACKLOG)
        projector = ProjectorProcess(url, tmp_path)
        try:
            projector.wait_until_holding()
            deadline = time.monotonic() + 10
            while applied(url) == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            with frozen(postgres):
                time.sleep(0.5)  # every loop is now waiting for a statement's answer
                started = time.monotonic()
                projector.process.send_signal(signal.SIGTERM)
                code = projector.process.wait(UNIT_STOP_SECONDS)
                took = time.monotonic() - started
        finally:
            projector.stop()
        assert code == 0, projector.log()
        assert took < STOP_GRACE_SECONDS + 3, f"the stop took {took:.1f} s:\n{projector.log()}"
        waited = wait_for_match(
            projector.log,
            rf"the database did not answer within {STOP_GRACE_SECONDS:.0f} s of the stop"
            r" \((.+)\); closing their connections",
        )
        # what was waiting for the server: a page of the feed, a projection's batch
        assert set(waited[1].split(", ")) <= {"feed", "orders", "user_order_summaries"}
        assert applied(url) < BACKLOG, "the backlog was done before the server stopped answering"
        with running_projector(url, tmp_path):
            wait_until_caught_up(url, timeout=60)
        assert audit(url) == BACKLOG


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_rebuild_stopped_while_the_database_answers_nothing_ends_in_time_and_resumes(
    signum: signal.Signals,
) -> None:
    # Before the bounded stop: 20 s for SIGINT (psycopg's cancel waits, then the pools'), and
    # SIGTERM killed the command at once, without a word.
    with LocalPostgres() as postgres:
        url = new_database(postgres, "cqrs_events")
        insert_backlog(url, BACKLOG)
        interrupted = rebuild(url, "orders", "--batch-size", "1000")
        try:
            wait_for_progress(url, "orders:rebuild", 0)
            with frozen(postgres):
                time.sleep(0.5)  # the rebuild now waits for the server's answer
                started = time.monotonic()
                interrupted.send_signal(signum)
                code, _, err = finished(interrupted)
                took = time.monotonic() - started
        finally:
            interrupted.kill()
        assert code == 128 + signum, err
        assert took < STOP_GRACE_SECONDS + 3, f"the stop took {took:.1f} s:\n{err}"
        assert f"interrupted (stopped by {signum.name}): the rebuild of orders is kept" in err
        kept = checkpoints(url)["orders:rebuild"]
        assert 0 < kept[1] < BACKLOG
        assert kept[3] == "rebuilding"
        code, out, err = finished(rebuild(url, "orders"))
        assert code == 0, err
        assert f"{BACKLOG} events applied" in out
