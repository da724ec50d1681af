"""The projector on the booted hosts: its unit, its database role, its journal, a command
seen through the query API within 2 s, a ``kill -9`` that loses and doubles nothing, a
rebuild as the owner role, and what each database role may and may not do.

Runs after test_edge.py, on the hosts the earlier modules left (upgraded, rolled back and
rebooted when the whole suite runs).
"""

import json
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from psycopg.conninfo import make_conninfo

from tests.deploy.hosts import Host, quote
from tests.deploy.playbooks import REPO
from tests.deploy.test_appliance import post_order, unique
from tests.projector.support import audit, wait_until_caught_up

pytestmark = pytest.mark.deploy

UNIT = "cqrs-demo-projector"
CLI = "/var/www/cqrs-demo/current/venv/bin/cqrs-demo"
PASSWORDS = {
    "cqrs_app": "/etc/cqrs-demo/db-password",
    "cqrs_projector": "/etc/cqrs-demo/projector-db-password",
    "cqrs_owner": "/etc/cqrs-demo/migrate-password",
}


def projector_pid(host: Host) -> int:
    return int(host.run(f"systemctl show --property=MainPID --value {UNIT}").strip())


def conninfo(host: Host, role: str) -> str:
    """The host's event store as ``role``, from here (the hosts share this machine's
    loopback), with the password the appliance keeps for it."""
    password = host.run(f"cat {PASSWORDS[role]}").strip()
    return make_conninfo(
        host="127.0.0.1",
        port=host.postgresql_port,
        dbname="cqrs_events",
        user=role,
        password=password,
    )


def as_role(host: Host, role: str, sql: str) -> tuple[bool, str]:
    """Run ``sql`` with psql on the host as ``role`` over TCP, with its own password;
    return whether it succeeded and psql's stderr."""
    result = host.try_run(
        f"cd / && PGPASSWORD=$(cat {PASSWORDS[role]}) psql -X -q -v ON_ERROR_STOP=1 "
        f"-h 127.0.0.1 -p {host.postgresql_port} -U {role} -d cqrs_events -c {quote(sql)}"
    )
    return result.returncode == 0, result.stderr


def get_json(host: Host, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{host.url}{path}", timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def order_seen_within_2_s(host: Host, accepted: dict[str, Any]) -> float:
    """GET the 202's order with its position as ``min_position``; assert it is there and
    placed; return the seconds the query took (the server waits at most 2 s)."""
    started = time.monotonic()
    status, body = get_json(
        host,
        f"/api/queries/orders/{accepted['order_id']}"
        f"?min_position={accepted['position']}&wait_ms=2000",
    )
    seconds = time.monotonic() - started
    assert status == 200, (status, body)
    assert body["order_id"] == accepted["order_id"], body
    assert body["status"] == "placed", body
    return seconds


def post_accepted(host: Host, prefix: str) -> dict[str, Any]:
    status, body = post_order(host, unique(prefix))
    assert status == 202, body
    return body


# The unit and its role


def test_projector_is_active_enabled_and_installed_unchanged(host: Host) -> None:
    assert host.run(f"systemctl is-active {UNIT}").strip() == "active"
    assert host.run(f"systemctl is-enabled {UNIT}").strip() == "enabled"
    installed = host.run(f"cat /etc/systemd/system/{UNIT}.service")
    assert installed == (REPO / f"systemd/{UNIT}.service").read_text()


def test_projector_connects_as_the_projector_role_with_its_own_password_only(
    host: Host,
) -> None:
    # The drop-in replaces the unit's credential: the API's password is not handed over.
    credentials = f"/run/credentials/{UNIT}.service"
    assert host.run(f"ls {credentials}").split() == ["db-password"]
    handed = host.run(f"cat {credentials}/db-password")
    assert handed == host.run(f"cat {PASSWORDS['cqrs_projector']}")
    sessions = host.run(
        f"cd / && runuser -u postgres -- psql -X -A -t -p {host.postgresql_port} -c "
        "\"SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = 'cqrs_events' "
        f"AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')\""
    ).split()
    assert sessions == ["cqrs_projector"], sessions  # the projections' locks


def test_projector_security_exposure_is_at_most_2(host: Host) -> None:
    report = host.run(f"systemd-analyze security --no-pager {UNIT}.service")
    match = re.search(rf"Overall exposure level for {UNIT}\.service: ([\d.]+)", report)
    assert match, report
    assert float(match[1]) <= 2.0, report


def test_projector_journal_tells_it_took_the_locks_and_caught_up(host: Host) -> None:
    journal = host.run(f"journalctl -b -u {UNIT} -o cat --no-pager")
    for projection in ("orders", "user_order_summaries"):
        assert f"projection {projection}: took the lock, this process projects it" in journal
        assert re.search(rf"projection {projection}: caught up at \d+-\d+, \d+ events", journal)
    for refusal in ("permission denied", "Permission denied", "Operation not permitted"):
        assert refusal not in journal, journal[-3000:]
    assert host.run(f"journalctl -b -u {UNIT} -p err -o cat --no-pager").strip() == ""


def test_projections_status_shows_both_running(host: Host) -> None:
    # As verify.yml and docs/operations.md run it: the projector's settings and credential.
    output = host.run(
        "systemd-run --quiet --wait --pipe --collect --property=User=cqrs-demo "
        "--property=EnvironmentFile=/etc/cqrs-demo/cqrs-demo.env "
        "--property=EnvironmentFile=/etc/cqrs-demo/cqrs-demo-projector.env "
        "--property=LoadCredential=db-password:/etc/cqrs-demo/projector-db-password "
        "/bin/sh -c 'CQRS_DATABASE_PASSWORD_FILE=$CREDENTIALS_DIRECTORY/db-password "
        f"exec {CLI} projections status'"
    )
    assert re.search(r"^orders +running ", output, re.MULTILINE), output
    assert re.search(r"^user_order_summaries +running ", output, re.MULTILINE), output


# The read side at work


def test_a_command_is_visible_through_the_query_api_within_2_s(host: Host) -> None:
    seconds = order_seen_within_2_s(host, post_accepted(host, "query"))
    assert seconds < 2.0


def cancel(host: Host, user_id: str, order_id: str) -> int:
    request = urllib.request.Request(
        f"{host.url}/api/commands/order/cancel",
        data=json.dumps({"user_id": user_id, "order_id": order_id, "reason": "test"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return int(response.status)


def write_orders(host: Host, stop: threading.Event, written: list[int]) -> None:
    """Orders of a few users, every third one cancelled, until ``stop``."""
    count = 0
    while not stop.is_set():
        status, body = post_order(host, f"projector_kill_{count % 5}")
        assert status == 202, body
        if count % 3 == 0:
            assert cancel(host, body["aggregate_id"], body["order_id"]) == 202
        count += 1
    written.append(count)


def test_kill_9_of_the_projector_is_restarted_and_applies_every_event_once(
    host: Host,
) -> None:
    stop, written = threading.Event(), list[int]()
    writer = threading.Thread(target=write_orders, args=(host, stop, written))
    before = projector_pid(host)
    writer.start()
    try:
        time.sleep(1.5)
        host.run(f"kill -9 {before}")
        time.sleep(1.5)
    finally:
        stop.set()
        writer.join(timeout=60)
    assert written, "the writer failed"
    assert written[0] > 5, written
    host.run(f"timeout 30 sh -c 'until systemctl -q is-active {UNIT}; do sleep 0.2; done'")
    assert projector_pid(host) not in (0, before)
    exits = host.run(f"journalctl --no-pager -u {UNIT} -g 'Main process exited'")
    assert "code=killed, status=9/KILL" in exits
    # Every event of the host, all tests' and verify.yml's, applied exactly once: each
    # checkpoint counts as many events applied as the table holds (one applied twice would
    # count twice), and the read models equal their recomputation from the events.
    database = conninfo(host, "cqrs_projector")
    wait_until_caught_up(database, timeout=30)
    assert audit(database) > written[0]
    order_seen_within_2_s(host, post_accepted(host, "after_kill"))


def test_a_rebuild_as_the_owner_role_keeps_the_roles_privileges(host: Host) -> None:
    # The documented command (docs/operations.md, "Rebuilding a projection").
    host.run(
        "systemd-run --quiet --wait --pipe --collect --property=User=cqrs-demo "
        "--property=LoadCredential=db-password:/etc/cqrs-demo/migrate-password "
        "--setenv=CQRS_DATABASE_URL=postgresql://cqrs_owner@127.0.0.1:"
        f"{host.postgresql_port}/cqrs_events "
        "/bin/sh -c 'CQRS_DATABASE_PASSWORD_FILE=$CREDENTIALS_DIRECTORY/db-password "
        f"exec {CLI} projections rebuild orders'",
        timeout=120,
    )
    # The swapped-in table: the projector writes it, the API reads it and may not write it.
    order_seen_within_2_s(host, post_accepted(host, "rebuilt"))
    succeeded, error = as_role(host, "cqrs_app", "DELETE FROM orders")
    assert not succeeded
    assert "permission denied for table orders" in error, error
    wait_until_caught_up(conninfo(host, "cqrs_projector"), timeout=30)
    audit(conninfo(host, "cqrs_projector"))


# What each role may do, tried with real connections as that role


ROLLED_BACK_ORDER = (
    "BEGIN; INSERT INTO orders VALUES ('o-probe', 'u-probe', 'p', 1, 1, 'placed', now(), "
    "NULL, NULL); ROLLBACK;"
)
ROLLED_BACK_EVENT = (
    "BEGIN; INSERT INTO events (aggregate_id, event_type, payload, occurred_on, version, "
    "event_id, metadata) VALUES ('u-probe', 'OrderCreated', '{}', now(), 1, "
    "gen_random_uuid(), '{}'); ROLLBACK;"
)


@pytest.mark.parametrize(
    ("role", "sql", "allowed"),
    [
        ("cqrs_app", "SELECT count(*) FROM orders", True),
        ("cqrs_app", "SELECT count(*) FROM projection_checkpoints", True),
        ("cqrs_app", ROLLED_BACK_EVENT, True),
        ("cqrs_app", ROLLED_BACK_ORDER, False),
        (
            "cqrs_app",
            "INSERT INTO user_order_summaries VALUES ('u-probe', 1, 0, 1, 1, now())",
            False,
        ),
        ("cqrs_app", "INSERT INTO projection_checkpoints (projection) VALUES ('probe')", False),
        ("cqrs_app", "INSERT INTO projection_skips SELECT * FROM projection_skips", False),
        ("cqrs_app", "UPDATE user_order_summaries SET open_orders = 0", False),
        ("cqrs_app", "DELETE FROM user_order_summary_open_orders", False),
        ("cqrs_app", "UPDATE projection_checkpoints SET state = 'stopped'", False),
        ("cqrs_app", "TRUNCATE projection_skips", False),
        ("cqrs_projector", "SELECT count(*) FROM events", True),
        ("cqrs_projector", ROLLED_BACK_ORDER, True),
        ("cqrs_projector", ROLLED_BACK_EVENT, False),
        ("cqrs_projector", "UPDATE events SET version = version", False),
        ("cqrs_projector", "DELETE FROM events", False),
        ("cqrs_projector", "TRUNCATE events", False),
        ("cqrs_projector", "TRUNCATE orders", False),
        ("cqrs_projector", "DELETE FROM idempotency_keys", False),
        ("cqrs_projector", "CREATE TABLE intruder (id int)", False),
        ("cqrs_projector", "CREATE TABLE projection_rebuild.intruder (id int)", False),
        ("cqrs_projector", "DROP TABLE orders", False),
    ],
)
def test_each_role_may_do_what_it_needs_and_nothing_more(
    host: Host, role: str, sql: str, allowed: bool
) -> None:
    succeeded, error = as_role(host, role, sql)
    if allowed:
        assert succeeded, (role, sql, error)
    else:
        assert not succeeded, f"{role}: `{sql}` succeeded"
        # Refused by the privileges, not by the append-only trigger or a constraint.
        assert re.search(r"permission denied|must be owner", error), (role, sql, error)


def test_tables_created_later_get_the_privileges_meant_for_them(host: Host) -> None:
    # Default privileges of the owner's future tables: in public, reading for the API (the
    # grants by name add more); in projection_rebuild, what the live read models have.
    acls = host.run(
        f"cd / && runuser -u postgres -- psql -X -A -t -F ' ' -p {host.postgresql_port} "
        "-d cqrs_events -c \"SELECT coalesce(n.nspname, '*'), d.defaclobjtype, "
        "array_to_string(array(SELECT unnest(d.defaclacl)::text ORDER BY 1), ',') "
        'FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace"'
    )
    found = {tuple(line.split(" ")[:2]): line.split(" ")[2] for line in acls.splitlines()}
    assert found == {
        ("public", "r"): "cqrs_app=r/cqrs_owner",
        ("public", "S"): "cqrs_app=U/cqrs_owner",
        ("public", "f"): "cqrs_app=X/cqrs_owner",
        ("projection_rebuild", "r"): "cqrs_app=r/cqrs_owner,cqrs_projector=arwd/cqrs_owner",
    }, acls
