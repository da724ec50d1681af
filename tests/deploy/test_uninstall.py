"""The uninstall of docs/operations.md, as written: runs last (it removes the appliance)."""

import pytest

from tests.deploy.documented import host_commands, run_documented
from tests.deploy.hosts import Host

pytestmark = pytest.mark.deploy


def test_the_documented_uninstall_leaves_nothing_of_the_appliance(host: Host) -> None:
    run_documented(host, host_commands("## Uninstall", 0))
    run_documented(host, host_commands("## Uninstall", 1))
    for path in (
        "/etc/systemd/system/cqrs-demo.service",
        "/etc/systemd/system/cqrs-demo-projector.service",
        "/etc/systemd/system/cqrs-demo-projector.service.d",
        "/var/www/cqrs-demo",
        "/etc/cqrs-demo",
        "/etc/postgresql-common/createcluster.d/cqrs-demo.conf",
        "/etc/systemd/system/cqrs-demo-backup@.service",
        "/etc/systemd/system/cqrs-demo-backup@.timer",
        "/etc/systemd/system/cqrs-demo-backup@full.timer.d",
        "/etc/pgbackrest/pgbackrest.conf",
        "/var/lib/cqrs-demo-backup",
    ):
        assert host.try_run(f"test -e {path}").returncode == 1, path
    assert host.try_run("getent passwd cqrs-demo").returncode == 2
    assert host.try_run("getent group cqrs-demo").returncode == 2
    assert host.try_run("systemctl cat cqrs-demo").returncode != 0
    assert host.run("ls /etc/postgresql/*/main/conf.d/").split() == []
    left = host.run(
        f"runuser -u postgres -- psql -p {host.postgresql_port} -Atc"
        " \"SELECT count(*) FROM pg_database WHERE datname = 'cqrs_events'\""
        " -c \"SELECT count(*) FROM pg_roles WHERE rolname LIKE 'cqrs%'\""
    )
    assert left.split() == ["0", "0"]
    assert host.run("systemctl is-active postgresql").strip() == "active"
    assert host.run("systemctl list-timers --all --no-legend 'cqrs-demo-backup@*'").strip() == ""
    archiving = f"runuser -u postgres -- psql -p {host.postgresql_port} -Atc 'SHOW archive_mode'"
    assert host.run(archiving).strip() == "off"
