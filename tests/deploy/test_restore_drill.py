"""Backups that restore, on the booted hosts: the drill of docs/operations.md.

site.yml set up pgBackRest (role cqrs_pgbackrest) and took a first full backup. The drill:
commands acknowledged, a differential backup through its unit, more commands, a time T
read from the database's clock, more commands; the data directory destroyed; restore.yml
to T. Every command acknowledged before T is there exactly once, none after T; the API
takes commands again, and the read models (restored with the events and the projector's
checkpoints) agree with the events. Then, on the restored hosts, more commands, the data
directory destroyed again, and restore.yml to the latest: every command acknowledged on
either timeline's kept part is there exactly once. Before the drill, both backup units
started at once (the Persistent= timers after a long power-off) run one after the other.

Runs after test_projector.py (modules run in name order) and leaves the hosts serving, on
the restored cluster (a new timeline), for test_tokens.py and test_uninstall.py. Not
earlier: in the test containers, stopping and starting the units again now and then fails
a start once (219/CGROUP, or "Failed to spawn executor": the unit's cgroup gone under
systemd); restore.yml tries again and goes on, but the journal keeps the failed start at
priority err, which the projector module's check of this boot's journal would count.
"""

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from tests.audit import Write, audit_writes
from tests.deploy.conftest import Appliance
from tests.deploy.hosts import Host, quote
from tests.deploy.playbooks import PlaybookRun
from tests.deploy.test_appliance import assert_clean, post_order
from tests.deploy.test_projector import conninfo, order_seen_within_2_s
from tests.projector.support import audit, wait_until_caught_up

pytestmark = pytest.mark.deploy

COMMANDS_PER_PHASE = 10


@dataclass
class Drill:
    """What one host's drill wrote: the writes acknowledged in each phase, by user id."""

    run: str
    acknowledged: dict[str, dict[str, Write]] = field(default_factory=dict)

    def post(self, host: Host, phase: str) -> None:
        """``COMMANDS_PER_PHASE`` orders, each of a user (a stream) of its own; every one
        must be acknowledged."""
        writes = self.acknowledged.setdefault(phase, {})
        for number in range(COMMANDS_PER_PHASE):
            user = f"drill_{self.run}_{phase}_{number}"
            status, body = post_order(host, user)
            assert status == 202, (host.name, status, body)
            writes[user] = Write(user, int(body["version"]))


def psql(host: Host, sql: str) -> str:
    """``sql`` as postgres on the host; psql's unaligned output."""
    return host.run(
        f"cd / && echo {quote(sql)} | runuser -u postgres -- psql -X -A -t -q -F ' '"
        f" -p {host.postgresql_port} -d cqrs_events"
    ).strip()


def database_clock(host: Host) -> datetime:
    return datetime.fromisoformat(psql(host, "SELECT to_json(clock_timestamp()) #>> '{}'"))


def stored_rows(host: Host, run: str) -> list[tuple[str, Write]]:
    rows = psql(
        host, f"SELECT aggregate_id, version FROM events WHERE aggregate_id LIKE 'drill_{run}_%'"
    )
    pairs = [line.split(" ") for line in rows.splitlines() if line]
    return [(user, Write(user, int(version))) for user, version in pairs]


def data_directory(host: Host) -> str:
    return psql(host, "SHOW data_directory")


def cluster_unit(host: Host) -> str:
    version = psql(host, "SHOW server_version_num")[:2]
    return f"postgresql@{version}-main"


def backup_labels(host: Host) -> list[str]:
    info = host.run("runuser -u postgres -- pgbackrest --stanza=cqrs-demo info")
    return re.findall(r"^\s+(?:full|diff|incr) backup: (\S+)$", info, re.M)


def start_backup(host: Host, kind: str) -> None:
    """``systemctl start cqrs-demo-backup@KIND`` (returns once the backup is done). In the
    test containers a start sometimes fails before anything runs, with result 'resources'
    ("Failed to spawn executor: No such file or directory": the unit's cgroup went away
    under systemd in the nspawn host); such a start is tried again, up to 3 times."""
    unit = f"cqrs-demo-backup@{kind}.service"
    for _ in range(3):
        started = host.try_run(f"systemctl start {unit}", timeout=300)
        if started.returncode == 0:
            return
        result = host.run(f"systemctl show -p Result --value {unit}").strip()
        assert result == "resources", f"{unit}: {result}: {started.stderr}"
        time.sleep(2)
    raise AssertionError(f"{host.name}: {unit} could not be started 3 times")


@dataclass
class Destroyed:
    """The drill before the restore: the target time and each host's writes."""

    target: str
    drills: dict[str, Drill]
    labels_before: dict[str, list[str]]


@pytest.fixture(scope="module")
def destroyed(appliance: Appliance) -> Destroyed:
    """On every host: phase A, a differential backup, phase B; then T (the same on every
    host: they share this machine's clock), phase C, the WAL archived, and the cluster
    stopped and its data directory removed."""
    drills = {name: Drill(uuid.uuid4().hex[:8]) for name in appliance.hosts}

    def before_target(host: Host) -> list[str]:
        drills[host.name].post(host, "a")
        start_backup(host, "diff")
        drills[host.name].post(host, "b")
        return backup_labels(host)

    labels = appliance.each(before_target)
    # A whole second after every write of phase B; then wait until every host's database
    # clock is past it, so each write of phase C commits after T.
    target = max(
        psql(
            host,
            "SELECT to_char((date_trunc('second', clock_timestamp()) + interval '1 s')"
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00'",
        )
        for host in appliance.hosts.values()
    )
    deadline = datetime.fromisoformat(target.replace("+00", "+00:00"))
    next(iter(appliance.hosts.values())).logs.joinpath("backup-target.txt").write_text(target)

    def after_target(host: Host) -> None:
        while database_clock(host) <= deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        drills[host.name].post(host, "c")
        # What a clean stop would leave: the WAL of phase C archived too, so the recovery
        # sees a commit after T and stops there (a lost disk loses the segment in
        # progress: at most archive_timeout of work).
        host.run("runuser -u postgres -- pgbackrest --stanza=cqrs-demo check", timeout=120)
        directory = data_directory(host)
        host.run(f"systemctl stop {cluster_unit(host)} && rm -rf {quote(directory)}")

    appliance.each(after_target)
    return Destroyed(target, drills, labels)


@pytest.fixture(scope="module")
def refused(appliance: Appliance) -> dict[str, PlaybookRun]:
    """restore.yml with a target that is no time: it must stop before touching anything."""
    return appliance.playbook(
        "restore.yml", "backup-restore-bogus", extra={"cqrs_restore_target": "yesterday"}
    )


@pytest.fixture(scope="module")
def restored(
    appliance: Appliance, refused: dict[str, PlaybookRun], destroyed: Destroyed
) -> dict[str, PlaybookRun]:
    return appliance.playbook(
        "restore.yml", "backup-restore", extra={"cqrs_restore_target": destroyed.target}
    )


def test_a_target_that_is_no_time_fails_naming_it_and_stops_nothing(
    refused: dict[str, PlaybookRun], host: Host
) -> None:
    run = refused[host.name]
    assert not run.succeeded
    assert "cqrs_restore_target must be latest or a time" in run.output(), run.summary()
    assert "'yesterday'" in run.output()
    assert host.run("systemctl is-active cqrs-demo cqrs-demo-projector").split() == [
        "active",
        "active",
    ]


@pytest.fixture(scope="module")
def bad_schedule(appliance: Appliance) -> dict[str, PlaybookRun]:
    """site.yml with a differential schedule systemd cannot read."""
    return appliance.playbook(
        "site.yml",
        "backup-bad-schedule",
        appliance.first_release,
        extra={"cqrs_pgbackrest_diff_schedule": "weekdays at one"},
    )


def test_a_schedule_systemd_cannot_read_fails_the_play_naming_it(
    bad_schedule: dict[str, PlaybookRun], host: Host
) -> None:
    run = bad_schedule[host.name]
    assert not run.succeeded
    assert "cqrs_pgbackrest_diff_schedule 'weekdays at one' is not a systemd" in run.output(), (
        run.summary()
    )
    dropin = "/etc/systemd/system/cqrs-demo-backup@diff.timer.d/schedule.conf"
    assert "OnCalendar=Mon..Sat *-*-* 01:15:00" in host.run(f"cat {dropin}")


def test_the_install_took_a_full_backup_and_scheduled_both_kinds(host: Host) -> None:
    timers = host.run("systemctl list-timers --all --no-pager --no-legend 'cqrs-demo-backup@*'")
    assert "cqrs-demo-backup@full.timer" in timers
    assert "cqrs-demo-backup@diff.timer" in timers
    for kind in ("full", "diff"):
        assert host.run(f"systemctl is-enabled cqrs-demo-backup@{kind}.timer").strip() == "enabled"
    assert host.run("systemctl show -p Result --value cqrs-demo-backup@full.service").strip() == (
        "success"
    )
    assert host.run("stat -c '%a %U' /var/lib/pgbackrest").strip() == "750 postgres"
    archived = psql(host, "SELECT archived_count > 0 AND failed_count = 0 FROM pg_stat_archiver")
    assert archived == "t"
    # What docs/operations.md ("Checking it") shows.
    shown = host.run("runuser -u postgres -- pgbackrest --stanza=cqrs-demo info")
    shown += host.run("systemctl list-timers --no-pager 'cqrs-demo-backup@*'")
    (host.logs / f"backup-checking-{host.name}.txt").write_text(shown)


def start_both_backups_at_once(host: Host) -> dict[str, str]:
    """Both backup units started in one ``systemctl start --no-block`` (as the Persistent=
    timers start them at the first boot after a long power-off); wait until neither is
    active any more; return each unit's Result. A start that failed before anything ran
    ('resources', see ``start_backup``) is tried again, up to 3 times."""
    units = {kind: f"cqrs-demo-backup@{kind}.service" for kind in ("full", "diff")}
    results: dict[str, str] = {}
    for _ in range(3):
        host.run(f"systemctl reset-failed {' '.join(units.values())}", check=False)
        host.run(f"systemctl start --no-block {' '.join(units.values())}")
        deadline = time.monotonic() + 300
        # Until neither has a job queued or running (a queued start is still "inactive").
        while host.run(f"systemctl list-jobs --no-legend {' '.join(units.values())}").strip():
            assert time.monotonic() < deadline, f"{host.name}: the backups still run after 300 s"
            time.sleep(1)
        results = {
            kind: host.run(f"systemctl show -p Result --value {unit}").strip()
            for kind, unit in units.items()
        }
        if "resources" not in results.values():
            return results
        time.sleep(2)
    return results


def test_both_backups_started_at_once_run_one_after_the_other_and_neither_fails(
    host: Host,
) -> None:
    since = host.run("date -u '+%Y-%m-%d %H:%M:%S'").strip()
    labels = backup_labels(host)
    results = start_both_backups_at_once(host)
    journal = host.run(
        f"journalctl --no-pager -o cat -u 'cqrs-demo-backup@*' --since {quote(since + ' UTC')}"
    )
    (host.logs / f"backup-both-at-once-{host.name}.txt").write_text(journal)
    assert results == {"full": "success", "diff": "success"}, journal[-3000:]
    assert "unable to acquire lock" not in journal, journal[-3000:]
    waited = re.findall(
        r"another cqrs-demo backup is running: the (full|diff) backup waits until it ends",
        journal,
    )
    assert len(waited) == 1, journal[-3000:]
    assert f"the other backup ended: the {waited[0]} backup starts" in journal
    added = [label for label in backup_labels(host) if label not in labels]
    assert sorted(label[-1] for label in added) == ["D", "F"], added
    print(f"{host.name}: both at once: {results}; the {waited[0]} backup waited; new {added}")


def test_restore_to_t_keeps_every_command_before_it_once_and_none_after(
    restored: dict[str, PlaybookRun], destroyed: Destroyed, host: Host
) -> None:
    assert_clean(restored, host.name)
    drill = destroyed.drills[host.name]
    labels = destroyed.labels_before[host.name]
    assert len(labels) >= 2, labels  # the install's full backup and the drill's diff
    assert labels[-1].endswith("D"), labels
    before = [*drill.acknowledged["a"].items(), *drill.acknowledged["b"].items()]
    stored = stored_rows(host, drill.run)
    found = audit_writes(before, stored)
    after = sorted(user for user, _ in stored if user in drill.acknowledged["c"])
    assert not found.problems, found.problems[:10]
    assert after == [], f"written after T {destroyed.target}, yet restored: {after}"
    assert len(stored) == 2 * COMMANDS_PER_PHASE
    print(f"{host.name}: restored to {destroyed.target}: {len(stored)} of the drill's rows")


def test_after_the_restore_the_service_serves_and_the_read_models_agree(
    restored: dict[str, PlaybookRun], destroyed: Destroyed, host: Host
) -> None:
    assert_clean(restored, host.name)
    assert psql(host, "SELECT pg_is_in_recovery()") == "f"
    assert host.run("systemctl is-active cqrs-demo cqrs-demo-projector").split() == [
        "active",
        "active",
    ]
    user = f"drill_{destroyed.drills[host.name].run}_after"
    status, body = post_order(host, user)
    assert status == 202, body
    destroyed.drills[host.name].acknowledged["after"] = {user: Write(user, int(body["version"]))}
    order_seen_within_2_s(host, body)
    database = conninfo(host, "cqrs_projector")
    wait_until_caught_up(database, timeout=30)
    assert audit(database) > 2 * COMMANDS_PER_PHASE


def test_backups_go_on_after_the_restore(restored: dict[str, PlaybookRun], host: Host) -> None:
    assert_clean(restored, host.name)
    start_backup(host, "diff")
    host.run("runuser -u postgres -- pgbackrest --stanza=cqrs-demo check", timeout=120)
    info = host.run("cat /var/lib/cqrs-demo-backup/info.json")
    assert '"type":"diff"' in info.replace(" ", ""), info[-2000:]


@pytest.fixture(scope="module")
def restored_latest(
    appliance: Appliance, restored: dict[str, PlaybookRun], destroyed: Destroyed
) -> dict[str, PlaybookRun]:
    """The second half of the drill, on the restored hosts (the new timeline, and the
    differential backup taken on it): phase D acknowledged, its WAL archived, the cluster
    stopped and its data directory removed again; then restore.yml to the latest."""

    def lose_the_disk_again(host: Host) -> None:
        destroyed.drills[host.name].post(host, "d")
        host.run("runuser -u postgres -- pgbackrest --stanza=cqrs-demo check", timeout=120)
        directory = data_directory(host)
        host.run(f"systemctl stop {cluster_unit(host)} && rm -rf {quote(directory)}")

    appliance.each(lose_the_disk_again)
    return appliance.playbook(
        "restore.yml", "backup-restore-latest", extra={"cqrs_restore_target": "latest"}
    )


def test_restore_to_the_latest_keeps_every_acknowledged_command_once(
    restored_latest: dict[str, PlaybookRun], destroyed: Destroyed, host: Host
) -> None:
    assert_clean(restored_latest, host.name)
    drill = destroyed.drills[host.name]
    assert "after" in drill.acknowledged, "the command after the restore to T was not acknowledged"
    acknowledged = [
        pair for phase in ("a", "b", "after", "d") for pair in drill.acknowledged[phase].items()
    ]
    stored = stored_rows(host, drill.run)
    found = audit_writes(acknowledged, stored)
    assert not found.problems, found.problems[:10]
    after_t = sorted(user for user, _ in stored if user in drill.acknowledged["c"])
    assert after_t == [], f"the old timeline's commands after T came back: {after_t}"
    assert len(stored) == 3 * COMMANDS_PER_PHASE + 1
    print(f"{host.name}: restored to the latest: {len(stored)} of the drill's rows")


def test_after_the_restore_to_the_latest_the_service_serves_and_the_read_models_agree(
    restored_latest: dict[str, PlaybookRun], destroyed: Destroyed, host: Host
) -> None:
    assert_clean(restored_latest, host.name)
    assert psql(host, "SELECT pg_is_in_recovery()") == "f"
    assert host.run("systemctl is-active cqrs-demo cqrs-demo-projector").split() == [
        "active",
        "active",
    ]
    status, body = post_order(host, f"drill_{destroyed.drills[host.name].run}_latest")
    assert status == 202, body
    order_seen_within_2_s(host, body)
    database = conninfo(host, "cqrs_projector")
    wait_until_caught_up(database, timeout=30)
    assert audit(database) > 3 * COMMANDS_PER_PHASE


def exposure(host: Host, unit: str) -> float:
    report = host.run(f"systemd-analyze security --no-pager {unit}")
    match = re.search(rf"Overall exposure level for {re.escape(unit)}: ([\d.]+)", report)
    assert match, report
    return float(match[1])


def recovery_lines(run: PlaybookRun) -> list[tuple[str, str]]:
    """(PostgreSQL's pid, message) of each line restore.yml showed where the recovery stopped."""
    output = run.output()
    start = output.index("Show where the recovery stopped")
    end = output.find("TASK [", start)
    section = output[start : end if end != -1 else None]
    return re.findall(r"\[(\d+)\] LOG:\s+(.+?)\"?,?$", section, re.MULTILINE)


def test_each_restore_shows_where_its_own_recovery_stopped(
    restored: dict[str, PlaybookRun], restored_latest: dict[str, PlaybookRun], host: Host
) -> None:
    """Not lines an earlier restore left in PostgreSQL's log: the restore to the latest
    once showed the restore to T's "archive recovery complete" beside its own."""
    to_t = recovery_lines(restored[host.name])
    latest = recovery_lines(restored_latest[host.name])
    assert any(line.startswith("recovery stopping before commit") for _, line in to_t), to_t
    assert any(line == "archive recovery complete" for _, line in latest), latest
    assert not any(line.startswith("recovery stopping") for _, line in latest), latest
    assert len({pid for pid, _ in to_t}) == 1, to_t  # one recovery: one startup process
    assert len({pid for pid, _ in latest}) == 1, latest
    assert to_t[0][0] != latest[0][0], (to_t, latest)


def test_the_backup_units_verify_clean_and_the_services_sandbox_is_unchanged(host: Host) -> None:
    # docs/operations.md: both units rate 1.1 on both Debian releases, as before backups.
    assert exposure(host, "cqrs-demo.service") == 1.1
    assert exposure(host, "cqrs-demo-projector.service") == 1.1
    backup = exposure(host, "cqrs-demo-backup@full.service")
    result = host.try_run(
        "systemd-analyze verify cqrs-demo-backup@full.service cqrs-demo-backup@diff.timer"
    )
    assert result.returncode == 0, result.stderr
    print(f"{host.name}: cqrs-demo-backup@full.service exposure {backup}")
