"""The appliance on booted Debian 12 and 13 hosts, as an operator would check it.

In the order an operator meets things: the first install, the running service, its data
and logs, a second run and a dry run of the playbook, an upgrade and a rollback, restarts
and failures, and last a reboot. Each test runs on every host (see conftest.py).
"""

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import httpx
import pytest
from psycopg.conninfo import make_conninfo

from tests.deploy.conftest import Appliance
from tests.deploy.documented import host_commands
from tests.deploy.hosts import Host, quote
from tests.deploy.playbooks import REPO, PlaybookRun
from tests.races import hold_version_one, wait_for_blocked_appends
from tests.support import wait_for_match

pytestmark = pytest.mark.deploy

ORDER = {"product_id": "prod_456", "quantity": 2, "total_price": 150.00}
CREATE = "/api/commands/order/create"
CURRENT = "/var/www/cqrs-demo/current"
PREVIOUS = "/var/www/cqrs-demo/previous"


def post_order(host: Host, user_id: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    """POST the seed's create-order command; return the status and the JSON body."""
    request = urllib.request.Request(
        f"{host.url}/api/commands/order/create",
        data=json.dumps({"user_id": user_id, **ORDER, **extra}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        body = error.read()
        return error.code, json.loads(body) if body.startswith(b"{") else {}


def post_until_accepted(host: Host, user_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """POST until 202 (at most ``timeout`` seconds, one try a second); return the body."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, body = post_order(host, user_id)
        except OSError as error:
            status, body, last = 0, {}, error
        if status == 202:
            return body
        last = last if status == 0 else (status, body)
        time.sleep(1)
    pytest.fail(f"{host.name}: no 202 within {timeout:.0f} s; last answer {last}")


def events_in_stream(host: Host, aggregate_id: str) -> int:
    """How many rows cqrs_events.events holds for ``aggregate_id`` (read as postgres)."""
    sql = "SELECT count(*) FROM events WHERE aggregate_id = :'aggregate'"
    output = host.run(
        f"cd / && echo {quote(sql)} | runuser -u postgres -- psql -X -A -t -q "
        f"-p {host.postgresql_port} -d cqrs_events -v aggregate={quote(aggregate_id)}"
    )
    return int(output.strip())


def as_app_role(host: Host, sql: str) -> str:
    """Run ``sql`` as the application role with its own password; return psql's stderr."""
    result = host.try_run(
        "cd / && PGPASSWORD=$(cat /etc/cqrs-demo/db-password) psql -X -q "
        f"-h 127.0.0.1 -p {host.postgresql_port} -U cqrs_app -d cqrs_events -c {quote(sql)}"
    )
    assert result.returncode != 0, f"{host.name}: `{sql}` as cqrs_app succeeded"
    return result.stderr


def main_pid(host: Host, unit: str = "cqrs-demo") -> int:
    return int(host.run(f"systemctl show --property=MainPID --value {unit}").strip())


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def assert_clean(runs: dict[str, PlaybookRun], name: str, *, changed: int | None = None) -> None:
    run = runs[name]
    assert run.succeeded, run.summary()
    if changed is not None:
        assert run.changed == changed, run.summary()


# The first install


def test_first_run_installs_everything(appliance: Appliance, host: Host) -> None:
    assert_clean(appliance.first_run, host.name)
    assert appliance.first_run[host.name].changed > 0


def test_service_is_active_and_enabled(host: Host) -> None:
    assert host.run("systemctl is-active cqrs-demo").strip() == "active"
    assert host.run("systemctl is-enabled cqrs-demo").strip() == "enabled"
    assert host.run("systemctl is-active postgresql").strip() == "active"
    assert host.run("systemctl is-enabled postgresql").strip() == "enabled"


def test_the_release_is_shown_by_version_healthz_and_the_journal(
    appliance: Appliance, host: Host
) -> None:
    release = appliance.first_release
    version = host.run(f"{CURRENT}/venv/bin/cqrs-demo --version").strip()
    assert version == f"cqrs-demo {release}"
    health = httpx.get(f"{host.url}/healthz", timeout=10).json()
    assert health == {"status": "ok", "release": release}
    for unit, line in (("cqrs-demo", "serving on "), ("cqrs-demo-projector", "projector started")):
        journal = host.run(f"journalctl -u {unit} -o cat --no-pager")
        assert re.search(rf"{line}.*, release {re.escape(release)}$", journal, re.M), journal[
            -2000:
        ]


def test_status_shows_the_release_and_the_installs_backup_and_nothing_needs_attention(
    appliance: Appliance, host: Host
) -> None:
    # The documented command (docs/operations.md, "One status screen").
    command = host_commands("## One status screen")[0]
    screen = host.try_run(command.removeprefix("sudo "))
    (host.logs / f"status-{host.name}.txt").write_text(screen.stdout + screen.stderr)
    assert screen.returncode == 0, screen.stdout + screen.stderr
    lines = screen.stdout.splitlines()
    assert lines[0] == f"cqrs-demo status, release {appliance.first_release}"
    assert re.search(rf"^ok +release +{re.escape(appliance.first_release)} ", screen.stdout, re.M)
    for name in ("cqrs-demo.service", "cqrs-demo-projector.service", "database", "orders"):
        assert re.search(rf"^ok +{re.escape(name)} ", screen.stdout, re.M), screen.stdout
    assert re.search(
        r"^ok +cqrs-demo\.service +active \(running\).*, (\d+) of \1 workers", screen.stdout, re.M
    )
    # site.yml took a first full backup (role cqrs_pgbackrest).
    assert re.search(
        r"^ok +backups +last full backup \d{8}-\d{6}F finished .* UTC, 0\.\d h ago$",
        screen.stdout,
        re.M,
    ), screen.stdout
    assert lines[-1] == "nothing needs attention"
    ignored = host.try_run(
        command.removeprefix("sudo ").replace(" status'", " status --ignore backups'")
    )
    assert ignored.returncode == 0, ignored.stdout + ignored.stderr
    assert ignored.stdout.splitlines()[-1] == "nothing needs attention (1 ignored)"


def test_unit_is_the_repository_file_unchanged(host: Host) -> None:
    installed = host.run("cat /etc/systemd/system/cqrs-demo.service")
    assert installed == (REPO / "systemd/cqrs-demo.service").read_text()


def test_security_exposure_is_at_most_2(host: Host) -> None:
    report = host.run("systemd-analyze security --no-pager cqrs-demo.service")
    match = re.search(r"Overall exposure level for cqrs-demo\.service: ([\d.]+)", report)
    assert match, report
    assert float(match[1]) <= 2.0, report


def test_host_runs_the_unified_cgroup_hierarchy_as_the_targets_do(host: Host) -> None:
    # Ubuntu 24.04, Debian 12 and 13 boot with cgroup v2 alone (tests/deploy/hosts.py).
    assert host.run("stat -fc %T /sys/fs/cgroup").strip() == "cgroup2fs"


def test_unit_verifies_clean(host: Host) -> None:
    result = host.try_run("systemd-analyze verify cqrs-demo.service")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == result.stderr.strip() == ""


def test_configuration_and_passwords_are_not_world_readable(
    appliance: Appliance, host: Host
) -> None:
    modes = host.run(
        "stat -c '%n %a %U %G' /etc/cqrs-demo /etc/cqrs-demo/* /etc/cqrs-demo/database/*"
    )
    expected = {
        "/etc/cqrs-demo": "750 root cqrs-demo",
        "/etc/cqrs-demo/cqrs-demo.env": "640 root cqrs-demo",
        "/etc/cqrs-demo/cqrs-demo-projector.env": "640 root cqrs-demo",
        "/etc/cqrs-demo/db-password": "600 root root",
        "/etc/cqrs-demo/migrate-password": "600 root root",
        "/etc/cqrs-demo/projector-db-password": "600 root root",
        # verify.yml's token, the only one that may write the reserved streams, and its hash.
        "/etc/cqrs-demo/verify-token": "600 root root",
        "/etc/cqrs-demo/verify-token-hash": "640 root cqrs-demo",
        "/etc/cqrs-demo/database": "700 root root",
        "/etc/cqrs-demo/database/app-password": "600 root root",
        "/etc/cqrs-demo/database/owner-password": "600 root root",
        "/etc/cqrs-demo/database/projector-password": "600 root root",
    }
    found = dict(line.split(" ", 1) for line in modes.splitlines())
    assert found == expected
    settings = host.run("cat /etc/cqrs-demo/cqrs-demo.env /etc/cqrs-demo/cqrs-demo-projector.env")
    secrets = [f"database/{role}-password" for role in ("owner", "app", "projector")]
    for path in (*secrets, "verify-token"):
        secret = host.run(f"cat /etc/cqrs-demo/{path}")
        assert len(secret) >= 40
        assert secret not in appliance.first_run[host.name].output()
        assert secret not in settings


def test_postgresql_listens_on_localhost_with_room_for_the_pools(host: Host) -> None:
    settings = host.run(
        f"cd / && runuser -u postgres -- psql -X -A -t -p {host.postgresql_port} -c "
        "\"SELECT name || '=' || setting FROM pg_settings WHERE name IN "
        "('listen_addresses', 'max_connections', 'password_encryption', 'synchronous_commit')\""
    ).split()
    cores = int(host.run("nproc").strip())
    values = dict(setting.split("=", 1) for setting in settings)
    assert values["listen_addresses"] == "localhost"
    assert int(values["max_connections"]) >= cores * 25 + 20
    assert values["password_encryption"] == "scram-sha-256"
    assert values["synchronous_commit"] == "on"
    rules = host.run(
        f"cd / && runuser -u postgres -- psql -X -A -t -p {host.postgresql_port} -c "
        "\"SELECT type, database[1], array_to_string(user_name, ','), auth_method "
        "FROM pg_hba_file_rules WHERE 'cqrs_app' = ANY(user_name)\""
    ).split()
    assert rules, "no pg_hba.conf rule for cqrs_app"
    assert all(rule.endswith("|scram-sha-256") for rule in rules), rules


# The service and its data


def test_post_is_accepted_and_its_event_stored(host: Host) -> None:
    status, body = post_order(host, unique("user"))
    assert status == 202, body
    assert body["status"] == "events_persisted"
    assert events_in_stream(host, body["aggregate_id"]) == 1


def app_conninfo(host: Host) -> str:
    """The host's event store as the application role, from here (the hosts share this
    machine's loopback): what the service itself connects as."""
    password = host.run("cat /etc/cqrs-demo/db-password").strip()
    return make_conninfo(
        host="127.0.0.1",
        port=host.postgresql_port,
        dbname="cqrs_events",
        user="cqrs_app",
        password=password,
    )


@pytest.mark.anyio
async def test_racing_pair_gives_one_202_one_409_one_row(host: Host) -> None:
    # Forced, as in the API tests: a transaction of the test holds version 1 of the stream
    # in the host's database; both requests are seen waiting for it there, so both read
    # version 0 before either could write; then it rolls back.
    user_id = unique("racer")
    database = app_conninfo(host)
    holder = await hold_version_one(database, user_id)
    body = {"user_id": user_id, **ORDER, "expected_version": 0}
    async with httpx.AsyncClient(base_url=host.url, timeout=30) as client:
        racing = [asyncio.create_task(client.post(CREATE, json=body)) for _ in range(2)]
        try:
            await wait_for_blocked_appends(database, 2)
        finally:
            await holder.rollback()
            await holder.close()
        answers = await asyncio.gather(*racing)
    assert sorted(answer.status_code for answer in answers) == [202, 409], answers
    conflict = next(answer for answer in answers if answer.status_code == 409).json()
    assert (conflict["expected_version"], conflict["actual_version"]) == (0, 1)
    assert events_in_stream(host, user_id) == 1


def test_application_role_cannot_change_events_or_the_schema(host: Host) -> None:
    for sql in (
        "UPDATE events SET version = version",
        "DELETE FROM events",
        "TRUNCATE events",
        "CREATE TABLE intruder (id int)",
        "DROP TABLE events",
    ):
        error = as_app_role(host, sql)
        assert "permission denied" in error or "must be owner" in error, (sql, error)


def test_journal_has_the_request_lines(host: Host) -> None:
    user_id = unique("journal")
    post_until_accepted(host, user_id)
    wait_for_match(
        lambda: host.run("journalctl -u cqrs-demo -o cat --no-pager"),
        rf"POST {CREATE} 202 .*aggregate={user_id}( |$)",
    )


# The playbook again: a second run, a dry run


def password_digests(host: Host) -> str:
    return host.run("sha256sum /etc/cqrs-demo/database/*-password /etc/cqrs-demo/*-password")


@pytest.fixture(scope="module")
def passwords_before(appliance: Appliance) -> dict[str, str]:
    return appliance.each(password_digests)


@pytest.fixture(scope="module")
def second_run(appliance: Appliance, passwords_before: dict[str, str]) -> dict[str, PlaybookRun]:
    return appliance.playbook("site.yml", "2-site-again", appliance.first_release)


@pytest.fixture(scope="module")
def check_run(appliance: Appliance, second_run: dict[str, PlaybookRun]) -> dict[str, PlaybookRun]:
    return appliance.playbook("site.yml", "3-site-check", appliance.first_release, check=True)


def test_second_run_changes_nothing(second_run: dict[str, PlaybookRun], host: Host) -> None:
    assert_clean(second_run, host.name, changed=0)


def test_passwords_stay_the_same_across_runs(
    second_run: dict[str, PlaybookRun], passwords_before: dict[str, str], host: Host
) -> None:
    assert password_digests(host) == passwords_before[host.name]


def test_check_mode_runs_clean(check_run: dict[str, PlaybookRun], host: Host) -> None:
    assert_clean(check_run, host.name, changed=0)


# An upgrade and a rollback


@pytest.fixture(scope="module")
def upgrade(appliance: Appliance, check_run: dict[str, PlaybookRun]) -> dict[str, PlaybookRun]:
    return appliance.playbook("site.yml", "4-site-upgrade", appliance.next_release)


@pytest.fixture(scope="module")
def rollback(appliance: Appliance, upgrade: dict[str, PlaybookRun]) -> dict[str, PlaybookRun]:
    return appliance.playbook("rollback.yml", "5-rollback")


def release_running(host: Host, unit: str = "cqrs-demo") -> str:
    """The release directory the main process of ``unit`` was started from."""
    command_line = host.run(f"tr '\\0' ' ' < /proc/{main_pid(host, unit)}/cmdline")
    match = re.search(r"/var/www/cqrs-demo/releases/([^/]+)/venv", command_line)
    assert match, command_line
    return match[1]


def test_upgrade_switches_to_the_new_release(
    upgrade: dict[str, PlaybookRun], appliance: Appliance, host: Host
) -> None:
    assert_clean(upgrade, host.name)
    releases = "/var/www/cqrs-demo/releases/"
    assert host.run(f"readlink {CURRENT}").strip() == releases + appliance.next_release
    assert host.run(f"readlink {PREVIOUS}").strip() == releases + appliance.first_release
    assert release_running(host) == appliance.next_release
    assert release_running(host, "cqrs-demo-projector") == appliance.next_release
    status, body = post_order(host, unique("upgraded"))
    assert status == 202, body


def test_rollback_returns_to_the_previous_release(
    rollback: dict[str, PlaybookRun], appliance: Appliance, host: Host
) -> None:
    assert_clean(rollback, host.name)
    releases = "/var/www/cqrs-demo/releases/"
    assert host.run(f"readlink {CURRENT}").strip() == releases + appliance.first_release
    assert host.run(f"readlink {PREVIOUS}").strip() == releases + appliance.next_release
    assert release_running(host) == appliance.first_release
    assert release_running(host, "cqrs-demo-projector") == appliance.first_release
    status, body = post_order(host, unique("rolled_back"))
    assert status == 202, body


# Restarts


def cluster_unit(host: Host) -> str:
    """The PostgreSQL cluster's own unit, e.g. postgresql@15-main.service."""
    units = host.run("systemctl list-units --all --plain --no-legend 'postgresql@*'").split()
    assert units, f"{host.name}: no postgresql@ unit"
    return units[0]


def test_service_restart_serves_as_soon_as_it_returns(host: Host) -> None:
    before = main_pid(host)
    host.run("systemctl restart cqrs-demo", timeout=120)
    assert main_pid(host) != before
    # Type=notify: `systemctl restart` returned after READY=1, so no retry is needed here.
    status, body = post_order(host, unique("restarted"))
    assert status == 202, body


def test_postgresql_restart_serves_again_without_help(host: Host) -> None:
    host.run("systemctl restart postgresql", timeout=120)
    post_until_accepted(host, unique("pg_restarted"))
    # Every worker's pool had only connections the restart closed: none may reach a client.
    answers = [post_order(host, unique("after_pg_restart"))[0] for _ in range(20)]
    assert answers == [202] * 20, answers
    assert host.run("systemctl is-active cqrs-demo").strip() == "active"


def test_failures_are_logged_at_priority_err(host: Host) -> None:
    # `systemctl stop postgresql` returns before the cluster is down (the cluster unit is
    # only PartOf= it): stop the cluster's own unit, which waits.
    cluster = cluster_unit(host)
    since = host.run("date +%s").strip()
    host.run(f"systemctl stop {cluster}", timeout=120)
    try:
        status, body = post_order(host, unique("failing"))
        assert status >= 500, body
    finally:
        host.run(f"systemctl start {cluster}", timeout=120)
    wait_for_match(
        lambda: host.run(f"journalctl -u cqrs-demo -p err --since @{since} -o cat --no-pager"),
        re.escape(f"POST {CREATE} {status} "),
    )
    post_until_accepted(host, unique("recovered"))


def test_sandbox_blocks_nothing_the_service_uses(host: Host) -> None:
    journal = host.run("journalctl -u cqrs-demo -o cat --no-pager")
    # The absence below means something only in the journal of a service that has run
    # and served: earlier tests' requests are in it.
    assert f"POST {CREATE} 202 " in journal, journal[-3000:]
    for refusal in ("Operation not permitted", "Permission denied", "Read-only file system"):
        assert refusal not in journal, journal[-3000:]
    assert "status=31/SYS" not in host.run("journalctl -u cqrs-demo --no-pager")


def test_stops_leave_nothing_for_systemd_to_kill(host: Host) -> None:
    # The upgrade, the rollback and the restarts above stopped both units: each stop ended
    # every process of the unit before its main process exited.
    stops = host.run("journalctl -u cqrs-demo -u cqrs-demo-projector -o cat --no-pager")
    assert "Stopped cqrs-demo.service" in stops, stops[-3000:]
    killed = [line for line in stops.splitlines() if "with signal SIGKILL" in line]
    assert killed == [], killed


# A reboot


@pytest.fixture(scope="module")
def rebooted(appliance: Appliance, rollback: dict[str, PlaybookRun]) -> dict[str, float]:
    def reboot(host: Host) -> float:
        started = time.monotonic()
        host.reboot()
        return time.monotonic() - started

    return appliance.each(reboot)


def test_reboot_brings_everything_back_by_itself(rebooted: dict[str, float], host: Host) -> None:
    assert host.boots == 2
    assert host.run("systemctl is-active postgresql").strip() == "active"
    waited = "timeout 60 sh -c 'until systemctl -q is-active cqrs-demo; do sleep 1; done'"
    state = host.try_run(waited)
    assert state.returncode == 0, host.run("journalctl -b -u cqrs-demo -o cat --no-pager")
    status, body = post_order(host, unique("rebooted"))
    assert status == 202, body
    assert host.run("systemctl is-active cqrs-demo-projector").strip() == "active"
