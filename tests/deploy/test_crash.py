"""A crash under load on a booted host: `kill -9` of the service while clients write.

systemd must restart it by itself, and no acknowledged event may be lost: every client
retries (a refused connection, a 503, a timeout) with the same Idempotency-Key until it has
its 202, and afterwards every 202 is in the table exactly once, at the version it was
acknowledged with, and nothing else of the run is (``tests.audit``).

The clients only record what happened; the test asserts, after they are done. The kill is
shown to have hit requests in flight: the same command that kills counts the service's
open client connections the moment before.
"""

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field

import pytest

from tests.audit import Write, assert_every_202_stored_once
from tests.deploy.hosts import Host, quote
from tests.deploy.test_appliance import main_pid

pytestmark = pytest.mark.deploy

CLIENTS = 4
LOAD_SECONDS = 12.0
GIVE_UP_SECONDS = 60.0


@dataclass
class Attempt:
    """One request: when it was sent and answered (monotonic seconds), and how it ended:
    its status, or 'refused' (nothing listened) or 'cut' (the connection broke)."""

    started: float
    ended: float
    outcome: str


@dataclass
class ClientRecord:
    """What one client saw; nothing here is asserted by the client itself."""

    acknowledged: dict[str, Write] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)


def post_with_key(host: Host, user_id: str, key: str) -> tuple[str, dict[str, object]]:
    """POST an order with ``key``; return how it ended (a status, 'refused' or 'cut') and
    the JSON body of a 2xx."""
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
            return str(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return str(error.code), {}
    except urllib.error.URLError as error:
        refused = isinstance(error.reason, ConnectionRefusedError)
        return ("refused" if refused else "cut"), {}
    except (OSError, http.client.HTTPException):
        # cut by the kill, even in the middle of an answer: the outcome is unknown, and the
        # retry with the same key tells
        return "cut", {}


def careful_client(host: Host, run: str, stop_at: float, record: ClientRecord) -> None:
    """New orders until ``stop_at``, each retried with its key until it has its 202."""
    while time.monotonic() < stop_at:
        key, user = uuid.uuid4().hex, f"crash_{run}_{uuid.uuid4().hex[:10]}"
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            started = time.monotonic()
            outcome, body = post_with_key(host, user, key)
            record.attempts.append(Attempt(started, time.monotonic(), outcome))
            if outcome == "202":
                record.acknowledged[key] = Write(user, int(str(body["version"])))
                break
            if outcome not in ("refused", "cut", "503"):
                record.unexpected.append(f"{outcome} {body}")
            time.sleep(0.2)
        else:
            record.gave_up.append(key)


def kill_9_counting_connections(host: Host) -> tuple[int, int]:
    """``kill -9`` the service's main process; return its pid and how many client
    connections the service had open the moment before (in the same shell command)."""
    pid = main_pid(host)
    connections = host.run(
        f"ss -Htn state established '( sport = :{host.http_port} )' | wc -l; kill -9 {pid}"
    )
    return pid, int(connections.strip())


def stored_rows(host: Host, run: str) -> list[tuple[str, Write]]:
    """(idempotency key, write) of every row of the run, read as postgres on the host."""
    sql = (
        "SELECT metadata->>'idempotency_key', aggregate_id, version FROM events"
        f" WHERE aggregate_id LIKE 'crash_{run}_%'"
    )
    output = host.run(
        f"cd / && echo {quote(sql)} | runuser -u postgres -- psql -X -A -t -q -F ' '"
        f" -p {host.postgresql_port} -d cqrs_events"
    )
    rows = [line.split(" ") for line in output.splitlines() if line.strip()]
    return [(key, Write(user, int(version))) for key, user, version in rows]


def test_kill_9_under_load_is_restarted_and_loses_no_acknowledged_event(host: Host) -> None:
    run = uuid.uuid4().hex[:8]
    records = [ClientRecord() for _ in range(CLIENTS)]
    stop_at = time.monotonic() + LOAD_SECONDS
    clients = [
        threading.Thread(target=careful_client, args=(host, run, stop_at, record))
        for record in records
    ]
    for client in clients:
        client.start()
    time.sleep(LOAD_SECONDS / 3)  # not a bound: the load runs before, during and after
    killed_at = time.monotonic()
    before, in_flight = kill_9_counting_connections(host)
    for client in clients:
        client.join(timeout=LOAD_SECONDS + GIVE_UP_SECONDS + 30)
    assert not any(client.is_alive() for client in clients), "a client never finished"
    attempts = [attempt for record in records for attempt in record.attempts]
    outcomes = Counter(attempt.outcome for attempt in attempts)
    acknowledged = {key: write for record in records for key, write in record.acknowledged.items()}
    print(f"{host.name}: {in_flight} in flight at the kill; attempts {dict(outcomes)}")
    assert [text for record in records for text in record.unexpected] == []
    assert [key for record in records for key in record.gave_up] == []
    assert in_flight > 0, "the kill hit no request in flight"
    assert any(a.outcome != "202" and a.ended > killed_at for a in attempts), "no outage seen"
    assert host.run("systemctl is-active cqrs-demo").strip() == "active"
    assert main_pid(host) not in (0, before)
    assert_every_202_stored_once(acknowledged.items(), stored_rows(host, run))
    assert len(acknowledged) > 20, "too few 202s for the audit to mean anything"
    restarts = host.run("journalctl --no-pager -u cqrs-demo -g 'Main process exited'")
    assert "code=killed, status=9/KILL" in restarts
