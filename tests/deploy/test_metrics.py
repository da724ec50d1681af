"""Metrics on the booted hosts: the API's and the projector's endpoints on loopback, and
the opt-in Prometheus (cqrs_prometheus_enabled): prometheus.yml installs the distribution's
package, and Prometheus's own HTTP API on the host reports every endpoint up and the
commands counter rising after a POST."""

import json
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest

from tests.deploy.conftest import Appliance
from tests.deploy.hosts import Host
from tests.deploy.playbooks import PlaybookRun
from tests.deploy.test_appliance import post_order, unique
from tests.support import Scrape

pytestmark = pytest.mark.deploy

CREATED = 'sum(cqrs_http_requests_total{route="/api/commands/order/create",status="202"})'
JOBS = {"cqrs-demo", "cqrs-demo-projector"}


@pytest.fixture(scope="module")
def prometheus(appliance: Appliance) -> dict[str, PlaybookRun]:
    """prometheus.yml with the opt-in turned on, scraping every second."""
    return appliance.playbook(
        "prometheus.yml",
        "prometheus",
        extra={"cqrs_prometheus_enabled": True, "cqrs_prometheus_scrape_interval": "1s"},
    )


def ask(host: Host, path: str, **parameters: str) -> Any:
    """Prometheus's HTTP API on the host: the ``data`` of a successful answer."""
    query = f"?{urllib.parse.urlencode(parameters)}" if parameters else ""
    url = f"http://127.0.0.1:{host.prometheus_port}/api/v1/{path}{query}"
    with urllib.request.urlopen(url, timeout=15) as response:
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    return answer["data"]


def created_so_far(host: Host) -> float:
    result = ask(host, "query", query=CREATED)["result"]
    return float(result[0]["value"][1]) if result else 0.0


def wait_for(condition: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.5)


def test_both_endpoints_answer_on_loopback_and_prometheus_is_off_by_default(host: Host) -> None:
    listening = host.run("ss -H -ltn")
    assert f"127.0.0.1:{host.metrics_port} " in listening
    assert f"127.0.0.1:{host.projector_metrics_port} " in listening

    def pools_published() -> Scrape | None:
        scrape = Scrape(f"http://127.0.0.1:{host.metrics_port}/metrics")
        return scrape if scrape.value("cqrs_pool_connections") > 0 else None

    # A test before may have restarted the service just now: its workers publish their
    # pools' sizes as they start.
    wait_for(pools_published, "the pools' connections published")
    projector = Scrape(f"http://127.0.0.1:{host.projector_metrics_port}/metrics")
    assert projector.value("cqrs_projector_status_read") == 1
    assert host.try_run("dpkg-query -W prometheus").returncode != 0  # not installed


def test_prometheus_sees_every_endpoint_up_and_the_commands_counter_rise(
    prometheus: dict[str, PlaybookRun], host: Host
) -> None:
    run = prometheus[host.name]
    if not run.succeeded:
        journal = host.try_run("journalctl --no-pager -o short-iso -u prometheus -n 60")
        raise AssertionError(f"{run.summary()}\njournalctl -u prometheus:\n{journal.stdout}")

    def targets_up() -> list[dict[str, Any]] | None:
        active = ask(host, "targets")["activeTargets"]
        ours = [target for target in active if target["labels"]["job"] in JOBS]
        healthy = {target["labels"]["job"] for target in ours if target["health"] == "up"}
        return ours if healthy == JOBS else None

    targets = wait_for(targets_up, "both jobs' targets up")
    assert {t["scrapeUrl"] for t in targets} == {
        f"http://127.0.0.1:{host.metrics_port}/metrics",
        f"http://127.0.0.1:{host.projector_metrics_port}/metrics",
    }
    assert all(t["labels"]["host"] == host.name for t in targets)
    time.sleep(2.5)  # a publish (every second) and a scrape (every second) after the last
    before = created_so_far(host)
    status, body = post_order(host, unique("prometheus"))
    assert status == 202, body

    def risen() -> float | None:
        now = created_so_far(host)
        return now if now > before else None

    after = wait_for(risen, f"the creates counted above {before}")
    assert after == before + 1
    urls = [target["scrapeUrl"] for target in targets]
    print(f"{host.name}: targets {urls} up; {CREATED}: {before} -> {after}")
    applied = ask(host, "query", query="cqrs_projection_events_applied")["result"]
    assert {sample["metric"]["projection"] for sample in applied} == {
        "orders",
        "user_order_summaries",
    }
