"""Queries read from a hot standby (``CQRS_READ_DATABASE_URL``), commands go to the primary:
a real primary, a real streaming replica of it, a real service and projector.

The service's URLs name a port where nothing listens first, so every connection it makes
also shows that libpq goes on to the next server; the read URL lists the primary before the
standby, and ``prefer-standby`` still picks the standby.
"""

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cqrs_demo.localdb import LocalPostgres, free_port
from cqrs_demo.ports import ORDERS_PROJECTION, SUMMARIES_PROJECTION, Position
from tests.projector.support import running_projector
from tests.support import Replicated, Scrape, Service, running_service

CREATE = "/api/commands/order/create"
COMMANDS = 30  # each read back from the standby at once with its own 202's position
WAIT_MS = 500


@dataclass(frozen=True)
class ReadSide:
    service: Service
    servers: Replicated
    dead_port: int
    metrics_port: int


@pytest.fixture(scope="module")
def read_side(
    primary_and_standby: Replicated, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReadSide]:
    """The service writing to the primary and reading from the standby, both URLs with a
    dead server first; the projector on the primary."""
    servers = primary_and_standby
    dead = free_port()
    metrics_port = free_port()
    logs = Path(tmp_path_factory.mktemp("read-pool"))
    with (
        running_service(
            servers.url(dead, servers.primary),
            logs,
            CQRS_READ_DATABASE_URL=servers.url(
                dead, servers.primary, servers.standby, role="prefer-standby"
            ),
            CQRS_METRICS_PORT=str(metrics_port),
        ) as service,
        running_projector(servers.url(servers.primary), logs) as projector,
    ):
        projector.wait_until_holding()
        yield ReadSide(service, servers, dead, metrics_port)


def checkpoint(server: LocalPostgres, projection: str) -> Position:
    text = server.psql(
        "cqrs_events",
        "SELECT transaction_id::text || '-' || event_number FROM projection_checkpoints"
        f" WHERE projection = '{projection}'",
    )
    return Position.parse(text.strip())


def place(client: httpx.Client, user: str) -> tuple[str, str]:
    """Place an order for ``user``; its id and the 202's position."""
    body = {"user_id": user, "product_id": "p", "quantity": 1, "total_price": 2.5}
    placed = client.post(CREATE, json=body)
    assert placed.status_code == 202, placed.text
    return placed.json()["order_id"], placed.json()["position"]


def test_the_service_starts_with_a_dead_server_listed_first_in_both_urls(
    read_side: ReadSide,
) -> None:
    servers, dead = read_side.servers, read_side.dead_port
    ready = read_side.service.wait_for_log(r"ready: .*queries read from (\S+)")
    assert ready[1] == (
        f"postgres@127.0.0.1:{dead},127.0.0.1:{servers.primary.port},"
        f"127.0.0.1:{servers.standby.port}/cqrs_events"
    )
    with read_side.service.client() as client:
        order_id, position = place(client, f"dead_first_{uuid.uuid4().hex[:8]}")
        read = client.get(f"/api/queries/orders/{order_id}", params={"min_position": position})
    assert read.status_code == 200, read.text


def test_every_query_with_the_202_position_sees_the_command_on_the_standby(
    read_side: ReadSide,
) -> None:
    user = f"standby_{uuid.uuid4().hex[:10]}"
    with read_side.service.client() as client:
        for number in range(COMMANDS):
            order_id, position = place(client, user)
            params = {"min_position": position, "wait_ms": "5000"}
            order = client.get(f"/api/queries/orders/{order_id}", params=params)
            summary = client.get(f"/api/queries/users/{user}/summary", params=params)
            assert (order.status_code, summary.status_code) == (200, 200), (order, summary)
            assert order.json()["order_id"] == order_id
            assert summary.json()["orders_placed"] == number + 1
            for answer in (order, summary):
                assert Position.parse(answer.headers["projection-position"]) >= Position.parse(
                    position
                )
    # The queries' connections are the standby's (and the pool's only on the primary are
    # the commands'; both pools are named cqrs-demo).
    on_standby = read_side.servers.standby.psql(
        "cqrs_events", "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cqrs-demo'"
    )
    assert int(on_standby) >= 1


def test_the_pool_gauges_show_the_write_pool_and_the_read_pool_apart(
    read_side: ReadSide,
) -> None:
    url = f"http://127.0.0.1:{read_side.metrics_port}/metrics"
    deadline = time.monotonic() + 10
    while True:  # the workers publish every second
        scrape = Scrape(url)
        pools = scrape.labels("cqrs_pool_connections", "pool")
        if pools == {"write", "read"} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert pools == {"write", "read"}, scrape.text
    for pool in ("write", "read"):
        assert scrape.value("cqrs_pool_connections", pool=pool) >= 2 * 5  # two workers' minimum
        in_use = scrape.value("cqrs_pool_connections_in_use", pool=pool)
        assert 0 <= in_use <= scrape.value("cqrs_pool_connections", pool=pool)
        assert scrape.labels("cqrs_pool_requests_waiting", "pool") == {"write", "read"}


def test_a_standby_that_lags_answers_503_within_the_wait_never_a_stale_answer(
    read_side: ReadSide,
) -> None:
    servers = read_side.servers
    user = f"lagging_{uuid.uuid4().hex[:10]}"
    with read_side.service.client() as client:
        _, first = place(client, user)  # the user has one order on both servers:
        summary = f"/api/queries/users/{user}/summary"
        assert client.get(summary, params={"min_position": first}).status_code == 200
        servers.standby.psql("postgres", "SELECT pg_wal_replay_pause()")
        try:
            order_id, position = place(client, user)
            wanted = Position.parse(position)
            # The projector has applied it on the primary; the standby has not replayed it.
            deadline = time.monotonic() + 10
            while checkpoint(servers.primary, SUMMARIES_PROJECTION) < wanted:
                assert time.monotonic() < deadline, "the projector did not apply the command"
                time.sleep(0.02)
            on_standby = checkpoint(servers.standby, SUMMARIES_PROJECTION)
            assert on_standby < wanted
            started = time.monotonic()
            behind = client.get(summary, params={"min_position": position, "wait_ms": WAIT_MS})
            waited = time.monotonic() - started
            as_it_is = client.get(summary)
            missing = client.get(f"/api/queries/orders/{order_id}")
            orders_on_standby = checkpoint(servers.standby, ORDERS_PROJECTION)
        finally:
            servers.standby.psql("postgres", "SELECT pg_wal_replay_resume()")
        caught_up = client.get(summary, params={"min_position": position})
    assert behind.status_code == 503, behind.text
    assert WAIT_MS / 1000 <= waited < 3.0, waited
    problem = behind.json()
    assert problem["type"] == "urn:cqrs-demo:projection-behind"
    assert (problem["wanted_position"], problem["reached_position"]) == (
        position,
        str(on_standby),
    )
    assert "orders_placed" not in problem
    # Without min_position, an answer as the standby has it, saying so: its position is the
    # standby's checkpoint, behind the primary's.
    assert as_it_is.status_code == 200
    assert as_it_is.headers["projection-position"] == str(on_standby)
    assert as_it_is.json()["orders_placed"] == 1
    assert missing.status_code == 404
    assert missing.headers["projection-position"] == str(orders_on_standby)
    assert caught_up.status_code == 200, caught_up.text
    assert caught_up.json()["orders_placed"] == 2


def test_the_projections_status_is_the_projectors_own_on_the_primary(
    read_side: ReadSide,
) -> None:
    """With replay paused, the standby's checkpoint stands still; the status moves."""
    servers = read_side.servers
    with read_side.service.client() as client:
        servers.replayed()
        servers.standby.psql("postgres", "SELECT pg_wal_replay_pause()")
        try:
            _, position = place(client, f"status_{uuid.uuid4().hex[:8]}")
            deadline = time.monotonic() + 10
            while checkpoint(servers.primary, ORDERS_PROJECTION) < Position.parse(position):
                assert time.monotonic() < deadline, "the projector did not apply the command"
                time.sleep(0.02)
            statuses = client.get("/api/projections").json()["projections"]
            on_standby = checkpoint(servers.standby, ORDERS_PROJECTION)
        finally:
            servers.standby.psql("postgres", "SELECT pg_wal_replay_resume()")
    orders = next(status for status in statuses if status["name"] == ORDERS_PROJECTION)
    assert Position.parse(orders["position"]) >= Position.parse(position) > on_standby


def test_with_two_standbys_one_paused_no_answer_is_behind_its_min_position(
    read_side: ReadSide, tmp_path: Path
) -> None:
    """Connections spread over a live standby and a paused one: the wait may see the live
    one and the read after it land on the paused one. Every answer is at or past the 202's
    position; none is a 503, as the query reads again, on the pool's next connection, until
    ``wait_ms`` (each worker's 16 connections all on the paused standby: 1 in 30,000; 5 s,
    for a projector slowed down by other work on the machine). (Answering 503 when the read
    after the wait was behind, 1 of 30 queries was.)"""
    servers = read_side.servers  # and its projector, on the primary
    paused = LocalPostgres(standby_of=servers.primary)
    try:
        paused.start()
        reads = servers.url(servers.standby, paused, role="standby") + "&load_balance_hosts=random"
        with (
            running_service(
                servers.url(servers.primary),
                tmp_path,
                CQRS_READ_DATABASE_URL=reads,
                CQRS_POOL_MIN_SIZE="16",
            ) as service,
            service.client() as client,
        ):
            paused.psql("postgres", "SELECT pg_wal_replay_pause()")
            on_each = [
                int(
                    server.psql(
                        "postgres",
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE application_name = 'cqrs-demo'",
                    )
                )
                for server in (servers.standby, paused)
            ]
            user = f"two_{uuid.uuid4().hex[:10]}"
            outcomes: list[int] = []
            refused: list[str] = []
            for _ in range(COMMANDS):
                order_id, position = place(client, user)
                read = client.get(
                    f"/api/queries/orders/{order_id}",
                    params={"min_position": position, "wait_ms": "5000"},
                )
                outcomes.append(read.status_code)
                refused += [] if read.status_code == 200 else [read.text]
                if read.status_code == 200:
                    reached = Position.parse(read.headers["projection-position"])
                    assert reached >= Position.parse(position)
                    assert read.json()["order_id"] == order_id
    finally:
        paused.stop()
    assert min(on_each) >= 1, on_each  # the pools did spread over both standbys
    print(f"answers to {COMMANDS} queries: {outcomes.count(200)} 200, {outcomes.count(503)} 503")
    assert outcomes == [200] * COMMANDS, refused


def test_a_malformed_read_url_stops_start_up_naming_it(database_url: str, tmp_path: Path) -> None:
    bad = "postgresql://postgres@127.0.0.1:5432,127.0.0.1:54x2/cqrs_events"
    with running_service(
        database_url, tmp_path, wait_ready=False, CQRS_READ_DATABASE_URL=bad
    ) as service:
        assert service.process.wait(30) == 78
    assert service.log().strip() == (
        "cqrs-demo: CQRS_READ_DATABASE_URL is invalid:"
        " port 2 ('54x2') is not a number from 1 to 65535"
    )


def test_an_unreachable_read_database_stops_start_up_naming_it(
    database_url: str, tmp_path: Path
) -> None:
    nowhere = f"postgresql://nobody@127.0.0.1:1,127.0.0.1:{free_port()}/cqrs_events"
    with running_service(
        database_url, tmp_path, wait_ready=False, CQRS_READ_DATABASE_URL=nowhere
    ) as service:
        assert service.process.wait(60) == 1
    assert "cannot connect to the read database nobody@127.0.0.1:1,127.0.0.1:" in service.log()
