"""Wake-ups: a notification wakes the projector at once; a lost one, or a killed listening
connection, delays it by one poll (a second) at most."""

import json
import time
from pathlib import Path

import psycopg

from cqrs_demo.domain.ids import uuid7
from cqrs_demo.store.notifications import EVENTS_CHANNEL
from tests.projector.support import (
    ProjectorProcess,
    checkpoints,
    running_projector,
    wait_until_caught_up,
)


def place_order(database_url: str, *, notify: bool) -> None:
    """One OrderCreated of a new user, and (if ``notify``) the write paths' notification."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        insert_order(conn, notify=notify)


def insert_order(conn: psycopg.Connection[tuple[object, ...]], *, notify: bool = True) -> None:
    """``place_order`` on ``conn`` (autocommit): the order and the notification in one
    transaction, as the write paths send it."""
    user, order = f"wake-{uuid7()}", str(uuid7())
    payload = {
        "event_type": "OrderCreated",
        "order_id": order,
        "user_id": user,
        "product_id": "p",
        "quantity": 1,
        "total_price": 1,
    }
    with conn.transaction():
        conn.execute(
            "INSERT INTO events (aggregate_id, event_type, payload, version)"
            " VALUES (%s, 'OrderCreated', %s, 1)",
            [user, json.dumps(payload)],
        )
        if notify:
            conn.execute("SELECT pg_notify(%s, '')", [EVENTS_CHANNEL])


def seconds_to_apply(database_url: str, *, notify: bool) -> float:
    started = time.monotonic()
    place_order(database_url, notify=notify)
    wait_until_caught_up(database_url, timeout=5)
    return time.monotonic() - started


def test_a_notification_wakes_the_projector_before_its_poll(
    fresh_database_url: str, tmp_path: Path
) -> None:
    with running_projector(fresh_database_url, tmp_path):
        wait_until_caught_up(fresh_database_url)
        delays = []
        for _ in range(5):
            time.sleep(0.3)
            delays.append(seconds_to_apply(fresh_database_url, notify=True))
    # by polling alone (every second) all five below 0.4 s has a chance of 1 in 100
    assert max(delays) < 0.4, delays


def test_without_a_notification_the_poll_catches_up_within_a_second(
    fresh_database_url: str, tmp_path: Path
) -> None:
    with running_projector(fresh_database_url, tmp_path):
        wait_until_caught_up(fresh_database_url)
        delays = [seconds_to_apply(fresh_database_url, notify=False) for _ in range(3)]
    assert max(delays) < 1.6, delays


def test_a_killed_listening_connection_is_logged_and_made_again(
    fresh_database_url: str, tmp_path: Path
) -> None:
    with running_projector(fresh_database_url, tmp_path) as projector:
        wait_until_caught_up(fresh_database_url)
        with psycopg.connect(fresh_database_url, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'cqrs-demo projector listen'"
            ).fetchall()
        assert killed == [(True,)]
        assert seconds_to_apply(fresh_database_url, notify=True) < 2
        projector.wait_for_log(r"WARNING cqrs_demo.projector: lost the connection listening")
        projector.wait_for_log(r"INFO cqrs_demo.projector: listening for new events again")
        time.sleep(0.3)
        assert seconds_to_apply(fresh_database_url, notify=True) < 0.4
    assert {state for *_, state in checkpoints(fresh_database_url).values()} == {"running"}


def wait_until_listening(database_url: str, timeout: float = 10) -> None:
    """Until the listening connection's last statement is ``LISTEN`` (it connects beside
    the projections, which may be caught up before it has)."""
    deadline = time.monotonic() + timeout
    while True:
        statement = listener_statement(database_url)
        if "LISTEN cqrs_events" in statement and "UNLISTEN" not in statement:
            return
        assert time.monotonic() < deadline, f"not listening after {timeout} s: {statement!r}"
        time.sleep(0.02)


def listener_statement(database_url: str) -> str:
    """The last statement of the projector's listening connection."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT query FROM pg_stat_activity"
            " WHERE application_name = 'cqrs-demo projector listen'"
        ).fetchone()
    return "" if row is None else str(row[0])


def test_busy_through_a_backlog_it_stops_listening_and_listens_again_after(
    fresh_database_url: str, tmp_path: Path
) -> None:
    with running_projector(fresh_database_url, tmp_path) as projector:
        wait_until_caught_up(fresh_database_url)
        wait_until_listening(fresh_database_url)
        with psycopg.connect(fresh_database_url) as conn:  # 30,000 orders, one transaction
            conn.execute(
                "INSERT INTO events (aggregate_id, event_type, payload, version)"
                " SELECT 'backlog-' || n, 'OrderCreated', jsonb_build_object("
                "  'event_type', 'OrderCreated', 'order_id', gen_random_uuid()::text,"
                "  'user_id', 'backlog-' || n, 'product_id', 'p', 'quantity', 1,"
                "  'total_price', 1), 1"
                " FROM generate_series(1, 30000) AS n"
            )
        statements: set[str] = set()
        deadline = time.monotonic() + 30
        with psycopg.connect(fresh_database_url, autocommit=True) as notifier:
            # notifications keep coming, as from appending transactions under load
            while time.monotonic() < deadline and not any("UNLISTEN" in s for s in statements):
                notifier.execute("SELECT pg_notify(%s, '')", [EVENTS_CHANNEL])
                statements.add(listener_statement(fresh_database_url))
                time.sleep(0.002)
        assert any("UNLISTEN cqrs_events" in s for s in statements), statements
        wait_until_caught_up(fresh_database_url, timeout=60)
        assert_woken_again(fresh_database_url, projector)


def test_a_steady_stream_read_on_the_timer_stops_its_wakeups_and_they_come_back_after(
    fresh_database_url: str, tmp_path: Path
) -> None:
    # Far below the busy rate (runner.BUSY_EVENTS_PER_SECOND): every read finds a few events.
    with running_projector(fresh_database_url, tmp_path) as projector:
        wait_until_caught_up(fresh_database_url)
        wait_until_listening(fresh_database_url)
        statements: set[str] = set()
        orders = 0
        deadline = time.monotonic() + 20
        with psycopg.connect(fresh_database_url, autocommit=True) as conn:
            while time.monotonic() < deadline and not any("UNLISTEN" in s for s in statements):
                insert_order(conn)  # a few hundred orders a second, evenly, each notified
                orders += 1
                if orders % 10 == 0:
                    statements.add(listener_statement(fresh_database_url))
                time.sleep(0.002)
        assert any("UNLISTEN cqrs_events" in s for s in statements), (orders, statements)
        wait_until_caught_up(fresh_database_url, timeout=10)
        assert_woken_again(fresh_database_url, projector)


def assert_woken_again(database_url: str, projector: ProjectorProcess) -> None:
    """After a stretch without listening, caught up: listening again once a read has found
    nothing, and five notified orders, each 0.3 s after the one before, applied within 0.4 s
    (woken by its notification, not by the poll: see the first test). (Orders placed back to
    back would each be found by a read on the 10 ms timer, three in a row, and the listener
    would rightly stop listening again: runner.TIMED_READS.)"""
    wait_until_listening(database_url)
    delays = []
    for _ in range(5):
        time.sleep(0.3)
        delays.append(seconds_to_apply(database_url, notify=True))
    assert projector.process.poll() is None
    assert max(delays) < 0.4, delays
