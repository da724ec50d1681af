"""The API's metrics endpoint, over HTTP from a real two-worker service: every worker's
requests counted, exactly, under route templates; refusals by reason; events, batches and
the pool."""

import os
import socket
import time
import uuid
from pathlib import Path

import httpx
from prometheus_client.mmap_dict import MmapedDict

from cqrs_demo.localdb import LocalPostgres, free_port
from tests.support import Scrape, Service, new_database, running_service

CREATE = "/api/commands/order/create"
ACCEPTED = 60  # new connections each: enough that both workers accept some


def order(user: str, quantity: int = 1) -> dict[str, object]:
    return {"user_id": user, "product_id": "p", "quantity": quantity, "total_price": 1}


def scrape_when_published(url: str, accepted: int, status: str = "202") -> Scrape:
    """Workers publish their counts every second: scrape until the answers of ``status``
    to creates are all in (then the rest of the same requests are too)."""
    deadline = time.monotonic() + 10
    while True:
        scrape = Scrape(url)
        counted = scrape.value("cqrs_http_requests_total", route=CREATE, status=status)
        if counted >= accepted or time.monotonic() > deadline:
            return scrape
        time.sleep(0.2)


def test_the_endpoint_counts_every_workers_commands_exactly(
    fresh_database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    with running_service(fresh_database_url, tmp_path, CQRS_METRICS_PORT=str(port)) as service:
        user = f"metrics_{uuid.uuid4().hex[:10]}"
        for _ in range(ACCEPTED):
            with httpx.Client(base_url=service.url, timeout=30) as client:  # a new connection
                assert client.post(CREATE, json=order(user)).status_code == 202
        with service.client() as client:
            assert client.post(CREATE, json=order(user, quantity=0)).status_code == 400
            conflict = client.post(CREATE, json=order(user), headers={"If-Match": '"1"'})
            assert conflict.status_code == 409
            order_id = uuid.uuid4()
            client.get(f"/api/queries/orders/{order_id}")
            client.get(f"/no/such/path/{order_id}")
        scrape = scrape_when_published(f"http://127.0.0.1:{port}/metrics", ACCEPTED)
        served = _requests_served_by_each_worker(service)

    requests = "cqrs_http_requests_total"
    assert scrape.value(requests, route=CREATE, status="202") == ACCEPTED
    assert scrape.value(requests, route=CREATE, status="400") == 1
    assert scrape.value(requests, route=CREATE, status="409") == 1
    latency = "cqrs_http_request_duration_seconds_count"
    assert scrape.value(latency, route=CREATE, status="202") == ACCEPTED
    assert scrape.value("cqrs_http_request_duration_seconds_sum", route=CREATE) > 0
    assert scrape.value("cqrs_commands_refused_total", reason="validation") == 1
    assert scrape.value("cqrs_commands_refused_total", reason="conflict") == 1
    assert scrape.value("cqrs_commands_refused_total", reason="idempotency") == 0
    assert scrape.value("cqrs_events_appended_total") == ACCEPTED
    # Every command that reached the store, the conflict too, in some statement.
    assert scrape.value("cqrs_group_commit_batch_size_sum") == ACCEPTED + 1
    assert scrape.value("cqrs_pool_connections", pool="write") >= 2 * 5  # two workers' minimum
    # No CQRS_READ_DATABASE_URL: the queries share the write pool, and no read pool is shown.
    assert scrape.labels("cqrs_pool_connections", "pool") == {"write"}
    assert scrape.value("cqrs_store_unreachable_seconds_total") == 0
    # Ids never become labels: the template of the query, "unmatched" for no route.
    routes = scrape.labels(requests, "route")
    assert {"/api/queries/orders/{order_id:text}", "unmatched", "/readyz"} <= routes
    assert str(order_id) not in scrape.text
    # Both workers served commands, and the endpoint added both up.
    assert len(served) == 2, served
    assert all(count > 0 for count in served.values()), served
    assert sum(served.values()) == ACCEPTED + 2


def _requests_served_by_each_worker(service: Service) -> dict[int, float]:
    """Create commands answered, per worker, from each worker's own file in the
    multiprocess directory (named in the workers' environment)."""
    pids = service.worker_pids()
    environ = Path(f"/proc/{pids[0]}/environ").read_bytes().split(b"\0")
    directory = next(
        line.split(b"=", 1)[1].decode()
        for line in environ
        if line.startswith(b"PROMETHEUS_MULTIPROC_DIR=")
    )
    served = {}
    for pid in pids:
        path = os.path.join(directory, f"counter_{pid}.db")
        values = MmapedDict.read_all_values_from_file(path)  # type: ignore[no-untyped-call]
        served[pid] = sum(
            value for key, value, _, _ in values if "cqrs_http_requests" in key and CREATE in key
        )
    return served


def test_a_metrics_port_in_use_is_a_clear_failure(fresh_database_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with running_service(
            fresh_database_url, tmp_path, wait_ready=False, CQRS_METRICS_PORT=str(port)
        ) as service:
            assert service.process.wait(20) == 1
            assert f"cannot listen for metrics on 127.0.0.1:{port}" in service.log()


def test_a_reused_idempotency_key_is_refused_and_a_replay_appends_nothing(
    fresh_database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    with running_service(fresh_database_url, tmp_path, CQRS_METRICS_PORT=str(port)) as service:
        user = f"metrics_{uuid.uuid4().hex[:10]}"
        key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
        with service.client() as client:
            first = client.post(CREATE, json=order(user), headers=key)
            replay = client.post(CREATE, json=order(user), headers=key)
            reused = client.post(CREATE, json=order(user, quantity=2), headers=key)
        assert (first.status_code, replay.status_code, reused.status_code) == (202, 202, 422)
        assert replay.headers["idempotent-replayed"] == "true"
        scrape = scrape_when_published(f"http://127.0.0.1:{port}/metrics", 1, status="422")

    assert scrape.value("cqrs_http_requests_total", route=CREATE, status="202") == 2
    assert scrape.value("cqrs_events_appended_total") == 1
    assert scrape.value("cqrs_commands_refused_total", reason="idempotency") == 1
    assert scrape.value("cqrs_commands_refused_total") == 1


def test_an_outage_is_counted_in_seconds_and_its_503s_are_not_refusals(tmp_path: Path) -> None:
    port = free_port()
    with LocalPostgres() as postgres:
        url = new_database(postgres, "cqrs_events")
        user = f"outage_{uuid.uuid4().hex[:10]}"
        with (
            running_service(url, tmp_path, CQRS_METRICS_PORT=str(port)) as service,
            service.client() as client,
        ):
            assert client.post(CREATE, json=order(user)).status_code == 202
            postgres.stop(remove=False)
            stopped_at = time.monotonic()
            during = []
            while time.monotonic() - stopped_at < 4:
                during.append(client.post(CREATE, json=order(user)).status_code)
                time.sleep(0.1)
            postgres.start()
            assert client.post(CREATE, json=order(user)).status_code == 202
            metrics = f"http://127.0.0.1:{port}/metrics"
            scrape = scrape_when_published(metrics, len(during), status="503")
            time.sleep(2.5)  # two more samples by each worker, the store back
            later = Scrape(metrics)

    assert set(during) == {503}, during
    assert scrape.value("cqrs_http_requests_total", route=CREATE, status="503") == len(during)
    # Sampled each second by each worker while it knows the store unreachable (and finds
    # it so again): at least the seconds one worker answered 503s, at most the outage (4 s
    # and the restart's) in both workers; an idle worker does not go on counting after it.
    unreachable = scrape.value("cqrs_store_unreachable_seconds_total")
    assert 1 <= unreachable <= 2 * (4 + 2), unreachable
    assert later.value("cqrs_store_unreachable_seconds_total") == unreachable
    assert later.value("cqrs_commands_refused_total") == 0
    assert later.value("cqrs_events_appended_total") == 2
