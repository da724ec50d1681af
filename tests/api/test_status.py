"""``cqrs-demo status`` against a real service, projector and PostgreSQL.

This machine runs no systemd: the two units' lines need attention here (the deployment
tests check them on booted hosts), so most runs ignore them.
"""

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cqrs_demo.localdb import LocalPostgres
from cqrs_demo.release import release_id
from cqrs_demo.status import worker_pids
from cqrs_demo.store.sql import latest_schema_version
from tests.projector.support import running_projector, wait_until_caught_up
from tests.projector.test_stop_and_skip import insert_event, wait_for_state
from tests.support import CQRS_DEMO, Replicated, Service, running_service

NO_UNITS = ("--ignore", "service", "--ignore", "projector")
PGBACKREST_INFO = Path(__file__).parents[1] / "unit" / "pgbackrest"


def status(
    service_url: str, database_url: str, *arguments: str, **settings: str
) -> tuple[int, str]:
    port = service_url.rsplit(":", 1)[1]
    done = subprocess.run(
        [CQRS_DEMO, "status", *arguments],
        env={**os.environ, "CQRS_DATABASE_URL": database_url, "CQRS_PORT": port, **settings},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stderr == ""
    return done.returncode, done.stdout


def line(screen: str, name: str) -> str:
    match = re.search(rf"^(ok|ATTENTION|ignored) +{re.escape(name)}  .*$", screen, re.M)
    assert match, screen
    return match[0]


@pytest.fixture
def appliance(fresh_database_url: str, tmp_path: Path) -> Iterator[Service]:
    """The API and the projector over a database of the test's own, caught up."""
    with (
        running_service(fresh_database_url, tmp_path) as service,
        running_projector(fresh_database_url, tmp_path) as projector,
    ):
        projector.wait_until_holding()
        with service.client() as client:
            for n in range(3):
                body = {"user_id": f"s{n}", "product_id": "p", "quantity": 1, "total_price": 2}
                assert client.post("/api/commands/order/create", json=body).status_code == 202
        wait_until_caught_up(fresh_database_url)
        yield service


def test_a_sound_appliance_needs_attention_only_for_its_backups(
    appliance: Service, fresh_database_url: str
) -> None:
    code, screen = status(appliance.url, fresh_database_url, *NO_UNITS)
    assert code == 1
    assert "\x1b" not in screen  # no colour into a pipe
    assert screen.splitlines()[0] == f"cqrs-demo status, release {release_id()}"
    assert re.match(rf"ok +release +{re.escape(release_id())} \(", line(screen, "release"))
    version = latest_schema_version()
    assert re.search(
        rf"^ok +database +\S+ reachable, primary, PostgreSQL [\d.]+.*, schema version"
        rf" {version} \(this release needs {version}\)$",
        screen,
        re.M,
    ), screen
    for name in ("orders", "user_order_summaries"):
        assert re.match(
            r"ok +\S+ +running at \S+, 0 events \(0\.0 s\) behind, 3 applied$", line(screen, name)
        ), screen
    assert line(screen, "backups").startswith("ATTENTION backups")
    assert "none configured" in line(screen, "backups")
    assert screen.splitlines()[-1] == "1 of 7 need attention: backups"
    code, screen = status(appliance.url, fresh_database_url, *NO_UNITS, "--ignore", "backups")
    assert code == 0
    assert screen.splitlines()[-1] == "nothing needs attention (3 ignored)"


def test_the_backups_line_shows_the_last_backup_of_the_info_file_and_its_age(
    appliance: Service, fresh_database_url: str, tmp_path: Path
) -> None:
    # pgBackRest's own output (tests/unit/pgbackrest/), its full backup moved to an hour
    # before its differential one, which ended 3 hours ago and then 27.
    saved = json.loads((PGBACKREST_INFO / "info-full-and-diff.json").read_text())
    info = tmp_path / "info.json"
    for hours, code in ((3, 0), (27, 1)):
        full, diff = saved[0]["backup"]
        diff["timestamp"]["stop"] = int(time.time()) - hours * 3600
        full["timestamp"]["stop"] = diff["timestamp"]["stop"] - 3600
        info.write_text(json.dumps(saved))
        found, screen = status(
            appliance.url, fresh_database_url, *NO_UNITS, "--backup-info", str(info)
        )
        assert found == code, screen
        assert re.match(
            rf"(ok|ATTENTION) +backups +last diff backup 20261130-070339F_20261130-070344D"
            rf" finished .* UTC, {hours}\.0 h ago",
            line(screen, "backups"),
        ), screen
    assert screen.splitlines()[-1] == "1 of 7 need attention: backups"


def test_a_stopped_projection_needs_attention_naming_the_event(
    appliance: Service, fresh_database_url: str
) -> None:
    bad = insert_event(fresh_database_url, "OrderCreated", {"order_id": "o", "user_id": "u"})
    wait_for_state(fresh_database_url, "orders", "stopped")
    code, screen = status(appliance.url, fresh_database_url, *NO_UNITS, "--ignore", "backups")
    assert code == 1
    assert line(screen, "orders").startswith("ATTENTION orders")
    assert f"stopped at event {bad} (OrderCreated)" in line(screen, "orders")
    assert "orders" in screen.splitlines()[-1]


def test_an_unreachable_database_and_a_silent_api_need_attention(
    postgres: LocalPostgres, fresh_database_url: str
) -> None:
    closed = postgres.url("cqrs_events").replace(f":{postgres.port}/", ":1/")
    code, screen = status("http://127.0.0.1:1", closed, *NO_UNITS, "--ignore", "backups")
    assert code == 1
    release = line(screen, "release")
    assert re.match(r"ATTENTION release +no answer from http://127\.0\.0\.1:1/healthz: ", release)
    assert re.search(r"^ATTENTION database +\S+:1/cqrs_events unreachable: ", screen, re.M)
    assert line(screen, "projections").endswith("unknown: the database is unreachable")


def test_a_schema_behind_the_release_needs_a_migrate(
    postgres: LocalPostgres, appliance: Service
) -> None:
    postgres.create_database("cqrs_status_unmigrated")
    url = postgres.url("cqrs_status_unmigrated")
    code, screen = status(appliance.url, url, *NO_UNITS, "--ignore", "backups")
    assert code == 1
    assert line(screen, "database").endswith(
        f"schema version 0 (this release needs {latest_schema_version()}): cqrs-demo migrate"
    )
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('projection_checkpoints')").fetchone() == (None,)


def test_the_workers_are_the_spawned_children_of_the_main_process(service: Service) -> None:
    assert worker_pids(service.process.pid) == sorted(service.worker_pids())
    assert len(worker_pids(service.process.pid)) == 2
    assert worker_pids(os.getpid()) == []


def test_a_read_database_is_named_with_its_role_and_needs_attention_when_unreachable(
    primary_and_standby: Replicated,
) -> None:
    servers = primary_and_standby
    version = latest_schema_version()
    write_url = servers.url(servers.primary)
    quiet = (*NO_UNITS, "--ignore", "backups", "--ignore", "release")
    for read_from, role in ((servers.standby, "standby"), (servers.primary, "primary")):
        read_url = servers.url(read_from, role="any")
        code, screen = status(
            "http://127.0.0.1:1", write_url, *quiet, CQRS_READ_DATABASE_URL=read_url
        )
        assert code == 0, screen
        assert re.fullmatch(
            rf"ok +read database +postgres@127\.0\.0\.1:{read_from.port}/cqrs_events reachable"
            rf" \(127\.0\.0\.1:{read_from.port} answered\), {role}, PostgreSQL [\d.]+.*,"
            rf" schema version {version} \(this release needs {version}\); the queries read here",
            line(screen, "read database"),
        ), screen
        assert line(screen, "database").startswith("ok ")
    unreachable = servers.url(1, role="prefer-standby")
    code, screen = status(
        "http://127.0.0.1:1", write_url, *quiet, CQRS_READ_DATABASE_URL=unreachable
    )
    assert code == 1
    assert re.match(
        r"ATTENTION read database +postgres@127\.0\.0\.1:1/cqrs_events unreachable: ",
        line(screen, "read database"),
    ), screen
    assert screen.splitlines()[-1] == "1 of 8 need attention: read database"
    code, screen = status("http://127.0.0.1:1", write_url, *quiet)
    assert "read database" not in screen
