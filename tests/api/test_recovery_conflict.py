"""A query that the standby cancels for its replay (SQLSTATE 40001, "canceling statement due
to conflict with recovery"): tried again, and if the standby keeps cancelling it, a 503
naming the cause with ``Retry-After``. A real primary, a real hot standby of it with
``max_standby_streaming_delay = 0`` (the replay never waits for a query), a real service
reading from the standby.

How a conflict is made, each time, without timing luck: a transaction on the primary holds
``orders`` in ACCESS EXCLUSIVE mode, and the standby's replay holds that lock too, so the
query (``read_order.sql`` locks ``projection_checkpoints`` first, then ``orders``) waits
holding its lock on ``projection_checkpoints``. A second transaction on the primary then
locks ``projection_checkpoints`` the same way: to replay that lock the standby must cancel
the query that holds it ("User was holding a relation lock for too long").
"""

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import psycopg
import pytest

from cqrs_demo.localdb import LocalPostgres, LocalPostgresError
from tests.projector.support import running_projector, wait_until_caught_up
from tests.support import IN_CI, Service, new_database, running_service

WAITING_READ = """
SELECT a.pid || ' ' || a.query_start FROM pg_locks l JOIN pg_stat_activity a USING (pid)
WHERE NOT l.granted AND l.relation = 'orders'::regclass AND a.application_name = 'cqrs-demo'
"""
RETRIED = "the standby cancelled the statement: it conflicted with the replay of the primary's"


@dataclass(frozen=True)
class ReadFromStandby:
    primary: LocalPostgres
    standby: LocalPostgres
    service: Service
    order_id: str

    def primary_url(self) -> str:
        return self.primary.url("cqrs_events")

    def replayed(self) -> None:
        """Until the standby has replayed all the WAL the primary has inserted, the lock of
        an open transaction too (a commit of a transaction of its own wakes the WAL writer,
        which otherwise may sleep seconds before it writes that lock out)."""
        written = (
            self.primary.psql(
                "postgres", "SELECT pg_current_xact_id(), pg_current_wal_insert_lsn()"
            )
            .split("|")[1]
            .strip()
        )
        caught_up = f"SELECT pg_last_wal_replay_lsn() >= '{written}'::pg_lsn"
        wait_until(lambda: self.standby.psql("postgres", caught_up).strip() == "t")


def wait_until(condition: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not so within {timeout} s"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def read_from_standby(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReadFromStandby]:
    """The service writing to the primary and reading from the standby; one order placed
    and projected (then the projector stops: nothing else writes)."""
    logs = Path(tmp_path_factory.mktemp("recovery-conflict"))
    try:
        primary = LocalPostgres()
        primary.start()
    except LocalPostgresError as error:
        if IN_CI:
            pytest.fail(f"CI=true and the primary did not start: {error}")
        pytest.skip(f"needs PostgreSQL server binaries: {error}")
    standby = LocalPostgres(standby_of=primary, settings={"max_standby_streaming_delay": "0"})
    try:
        url = new_database(primary, "cqrs_events")
        standby.start()
        with running_projector(url, logs):
            with running_service(url, logs) as writer, writer.client() as client:
                body = {"user_id": "conflict", "product_id": "p", "quantity": 1, "total_price": 2}
                placed = client.post("/api/commands/order/create", json=body)
                assert placed.status_code == 202, placed.text
            wait_until_caught_up(url)
        with running_service(
            url, logs, CQRS_READ_DATABASE_URL=standby.url("cqrs_events")
        ) as service:
            setup = ReadFromStandby(primary, standby, service, placed.json()["order_id"])
            setup.replayed()
            yield setup
    finally:
        standby.stop()
        primary.stop()


def waiting_read(setup: ReadFromStandby) -> str | None:
    """The service's read that waits for ``orders`` on the standby, as its backend's pid and
    its statement's start (each try of the read is a statement of its own); None if none."""
    found = setup.standby.psql("cqrs_events", WAITING_READ).strip()
    return found or None


def moved_on(setup: ReadFromStandby, try_: str) -> bool:
    """Whether the standby no longer holds that try of the read waiting (it cancelled it)."""
    return waiting_read(setup) != try_


def read_while_the_standby_cancels(setup: ReadFromStandby, cancels: int) -> httpx.Response:
    """``GET`` the order while ``orders`` is held on the primary, make the standby cancel
    the read ``cancels`` times (each try of it, once it waits), then let it go; its answer."""
    holder = psycopg.connect(setup.primary_url())
    try:
        holder.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        setup.replayed()
        with ThreadPoolExecutor(1) as pool, setup.service.client() as client:
            answer = pool.submit(client.get, f"/api/queries/orders/{setup.order_id}")
            cancelled: list[str] = []
            while len(cancelled) < cancels and not answer.done():
                wait_until(lambda: answer.done() or waiting_read(setup) not in (None, *cancelled))
                try_ = waiting_read(setup)
                if try_ is None:
                    break
                with psycopg.connect(setup.primary_url()) as conn:  # commits at the end
                    conn.execute("LOCK TABLE projection_checkpoints IN ACCESS EXCLUSIVE MODE")
                wait_until(partial(moved_on, setup, try_))
                cancelled.append(try_)
            holder.rollback()
            response = answer.result(timeout=30)
    finally:
        holder.close()
    assert len(cancelled) == cancels
    return response


def test_a_read_the_standby_cancels_once_is_tried_again_and_answers(
    read_from_standby: ReadFromStandby,
) -> None:
    logged = read_from_standby.service.log().count(RETRIED)
    answer = read_while_the_standby_cancels(read_from_standby, cancels=1)
    assert answer.status_code == 200, answer.text
    assert answer.json()["order_id"] == read_from_standby.order_id
    log = read_from_standby.service.log()
    assert log.count(RETRIED) == logged + 1, log[-3000:]
    assert "changes (SQLSTATE 40001); trying the read again in 20 ms" in log


def test_a_read_the_standby_keeps_cancelling_is_a_503_naming_the_cause(
    read_from_standby: ReadFromStandby,
) -> None:
    logged = read_from_standby.service.log().count(RETRIED)
    answer = read_while_the_standby_cancels(read_from_standby, cancels=3)
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1"
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json() == {
        "type": "urn:cqrs-demo:recovery-conflict",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The read database (a standby) cancelled this query: it conflicted with the"
        " replay of the primary's changes. Please retry.",
    }
    log = read_from_standby.service.log()
    assert log.count(RETRIED) == logged + 3, log[-3000:]  # two tries again, then the 503
    assert "trying the read again in 100 ms" in log
    assert f"answering 503: {RETRIED} changes (SQLSTATE 40001)" in log
    # The next read, with nothing in its way, answers.
    with read_from_standby.service.client() as client:
        again = client.get(f"/api/queries/orders/{read_from_standby.order_id}")
    assert again.status_code == 200, again.text
    assert uuid.UUID(again.json()["order_id"])
