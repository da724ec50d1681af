"""A crash under load on a booted host: `kill -9` of the service while clients write.

systemd must restart it by itself, and no acknowledged event may be lost: every client
retries (a refused connection, a 503, a timeout) with the same Idempotency-Key until it has
its 202, and afterwards every 202 is in the table exactly once, at the version it was
acknowledged with, and nothing else of the run is.
"""

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.deploy.hosts import Host, quote
from tests.deploy.test_appliance import main_pid

pytestmark = pytest.mark.deploy

CLIENTS = 4
LOAD_SECONDS = 12.0
GIVE_UP_SECONDS = 60.0


def post_with_key(host: Host, user_id: str, key: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"{host.url}/api/commands/order/create",
        data=json.dumps(
            {"user_id": user_id, "product_id": "p", "quantity": 1, "total_price": 1}
        ).encode(),
        headers={"Content-Type": "application/json", "Idempotency-Key": key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {}
    except (OSError, http.client.HTTPException):
        # refused while systemd restarts it, or cut by the kill, even in the middle of an
        # answer: the outcome is unknown, and the retry with the same key tells
        return 0, {}


def careful_client(
    host: Host,
    run: str,
    stop_at: float,
    acknowledged: dict[str, tuple[str, int]],
    gave_up: list[str],
) -> None:
    while time.monotonic() < stop_at:
        key, user = uuid.uuid4().hex, f"crash_{run}_{uuid.uuid4().hex[:10]}"
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            status, body = post_with_key(host, user, key)
            if status == 202:
                version = body["version"]
                assert isinstance(version, int)
                acknowledged[key] = (user, version)
                break
            assert status in (0, 503), (status, body)
            time.sleep(0.2)
        else:
            gave_up.append(key)


def test_kill_9_under_load_is_restarted_and_loses_no_acknowledged_event(host: Host) -> None:
    run = uuid.uuid4().hex[:8]
    acknowledged: dict[str, tuple[str, int]] = {}
    gave_up: list[str] = []
    stop_at = time.monotonic() + LOAD_SECONDS
    clients = [
        threading.Thread(target=careful_client, args=(host, run, stop_at, acknowledged, gave_up))
        for _ in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    time.sleep(LOAD_SECONDS / 3)
    before = main_pid(host)
    host.run(f"kill -9 {before}")  # systemd then kills the workers and restarts the unit
    for client in clients:
        client.join(timeout=LOAD_SECONDS + GIVE_UP_SECONDS + 30)
    assert host.run("systemctl is-active cqrs-demo").strip() == "active"
    assert main_pid(host) not in (0, before)
    sql = (
        "SELECT metadata->>'idempotency_key', aggregate_id, version FROM events"
        f" WHERE aggregate_id LIKE 'crash_{run}_%'"
    )
    output = host.run(
        f"cd / && echo {quote(sql)} | runuser -u postgres -- psql -X -A -t -q -F ' '"
        f" -p {host.postgresql_port} -d cqrs_events"
    )
    rows = [line.split(" ") for line in output.splitlines() if line.strip()]
    stored = {key: (user, int(version)) for key, user, version in rows}
    print(f"{host.name}: {len(acknowledged)} acknowledged, {len(rows)} stored")
    assert gave_up == []
    assert len(stored) == len(rows), "an idempotency key was stored twice"
    assert stored == acknowledged
    assert len(acknowledged) > 20
    restarts = host.run("journalctl --no-pager -u cqrs-demo -g 'Main process exited'")
    assert "code=killed, status=9/KILL" in restarts
