"""The projector's metrics endpoint (``CQRS_PROJECTOR_METRICS_PORT``): each projection's
position, events applied, lag and state, read from the database at each scrape."""

import socket
import time
from pathlib import Path

import psycopg

from cqrs_demo.localdb import free_port
from tests.projector.support import running_projector, wait_until_caught_up
from tests.projector.test_stop_and_skip import insert_event, wait_for_state
from tests.support import Scrape

PROJECTIONS = ("orders", "user_order_summaries")


def order(number: int, quantity: object = 1) -> dict[str, object]:
    return {
        "order_id": f"o-{number}",
        "user_id": f"u-{number}",
        "product_id": "p",
        "quantity": quantity,
        "total_price": 5,
    }


def last_event(database_url: str) -> tuple[int, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT transaction_id::text::bigint, id FROM events"
            " ORDER BY transaction_id DESC, id DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_the_projector_exposes_each_projections_position_and_lag(
    fresh_database_url: str, tmp_path: Path
) -> None:
    for number in range(3):
        insert_event(fresh_database_url, "OrderCreated", order(number))
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with running_projector(
        fresh_database_url, tmp_path, CQRS_PROJECTOR_METRICS_PORT=str(port)
    ) as projector:
        wait_until_caught_up(fresh_database_url)
        projector.wait_for_log(rf"metrics on http://127.0.0.1:{port}/metrics")
        caught_up = Scrape(url)
        transaction, event = last_event(fresh_database_url)
        # An event no projection can read stops both there; the one after it waits.
        insert_event(fresh_database_url, "OrderCreated", order(3, quantity="two"))
        insert_event(fresh_database_url, "OrderCreated", order(4))
        for name in PROJECTIONS:
            wait_for_state(fresh_database_url, name, "stopped")
        time.sleep(0.5)  # the oldest event behind is older than that
        stopped = Scrape(url)

    assert caught_up.value("cqrs_projector_status_read") == 1
    assert caught_up.labels("cqrs_projection_events_applied", "projection") == set(PROJECTIONS)
    for name in PROJECTIONS:
        assert caught_up.value("cqrs_projection_events_applied", projection=name) == 3
        assert caught_up.value("cqrs_projection_events_behind", projection=name) == 0
        assert caught_up.value("cqrs_projection_seconds_behind", projection=name) == 0
        assert caught_up.value("cqrs_projection_position_transaction", projection=name) == (
            transaction
        )
        assert caught_up.value("cqrs_projection_position_event", projection=name) == event
        assert caught_up.value("cqrs_projection_stopped", projection=name) == 0
        assert stopped.value("cqrs_projection_stopped", projection=name) == 1
        assert stopped.value("cqrs_projection_events_behind", projection=name) == 2
        assert stopped.value("cqrs_projection_seconds_behind", projection=name) >= 0.5
        assert stopped.value("cqrs_projection_events_applied", projection=name) == 3


def test_a_metrics_port_in_use_stops_the_projector_with_a_clear_message(
    fresh_database_url: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with running_projector(
            fresh_database_url, tmp_path, CQRS_PROJECTOR_METRICS_PORT=str(port)
        ) as projector:
            assert projector.process.wait(20) == 1
            log = projector.log()
    assert f"cannot listen for metrics on 127.0.0.1:{port}: Address already in use" in log
    assert "Traceback" not in log
