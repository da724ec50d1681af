"""The cluster mode on three booted Debian hosts, each with an address of its own.

Debian 12 unless CQRS_TEST_CLUSTER_SUITE names another suite (trixie: Debian 13); one
suite per run keeps the suite's time within CI's.

In order: the hosts and their network (each reaches the others, apt reaches the mirror
through the relay); site.yml with cqrs_cluster_enabled; the API on every host; a power cut
of the primary's host under a load that round-robins the three APIs and retries with
Idempotency-Key, after which both read models must equal their recomputation from the
events, row by row; its return as a replica; queries on a standby and the status screen
naming both; a planned switchover (switchover.yml) under load; and a second run of the
playbook that changes nothing. The figures (seconds from the power
cut to the first 202, commands acknowledged, lost, duplicated) are printed and kept in the
logs directory (timings.txt, figures.txt).
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.audit import Write, audit_writes
from tests.bench.load import parse_wrk_output
from tests.deploy.cluster import (
    Cluster,
    ClusterRun,
    booted_cluster,
    end,
    members,
    primary,
    run_playbook,
)
from tests.deploy.documented import host_commands
from tests.deploy.hosts import Host, HostError, quote
from tests.deploy.playbooks import REPO
from tests.projector.support import READ_MODEL_DIFFERENCES
from tests.support import require

pytestmark = pytest.mark.deploy

SUITE = os.environ.get("CQRS_TEST_CLUSTER_SUITE") or "bookworm"
FAILOVER_TIMEOUT = 90.0
REJOIN_TIMEOUT = 180.0
# Before a drill the cluster is as the last step left it: whole, or healing within this.
WHOLE_TIMEOUT = 60.0
# How long the projector may take to apply what the load appended, once it stopped.
CATCH_UP_TIMEOUT = 60.0
# How late a host's address comes when it is booted again after a power cut.
ADDRESS_LATE = 5.0
DRILLS = int(os.environ.get("CQRS_TEST_CLUSTER_DRILLS") or 3)


def _require_tools() -> None:
    require(sys.platform == "linux" and os.geteuid() == 0, "root on Linux (systemd-nspawn)")
    for tool in (
        "debootstrap",
        "systemd-nspawn",
        "nsenter",
        "ip",
        "socat",
        "ssh",
        "tar",
        "zstd",
        "wrk",
    ):
        require(
            shutil.which(tool) is not None,
            f"the {tool!r} program (packaging/bootstrap installs what is missing)",
        )
    require(
        Path(sys.executable).with_name("ansible-playbook").exists(),
        "ansible-playbook beside the test Python (packaging/bootstrap makes .venv)",
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    _require_tools()
    with booted_cluster(SUITE) as booted:
        yield booted


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> ClusterRun:
    """The first site.yml run, with a release built for it."""
    releases = cluster.work / "releases"
    release = f"cluster-test-{time.strftime('%Y%m%dT%H%M%S')}"
    subprocess.run(
        [str(REPO / "packaging/build-release"), "--dist", str(releases), "--build-id", release],
        check=True,
        capture_output=True,
        timeout=600,
        env={**os.environ, "CQRS_PYTHON": sys.executable},
    )
    cluster.release_vars = {"cqrs_demo_release_dir": str(releases), "cqrs_demo_release": release}
    run = run_playbook(cluster, "site.yml", label="1-site", extra_vars=cluster.release_vars)
    if not run.succeeded:
        pytest.fail(f"site.yml failed: {run.summary()}", pytrace=False)
    return run


@dataclass
class Load:
    """The load generator (tests/deploy/cluster_load.py) running inside the namespace."""

    process: subprocess.Popen[bytes]
    out: Path
    prefix: str

    def stop(self) -> list[dict[str, Any]]:
        """Let every command in progress finish; return every command's record."""
        self.out.with_suffix(".stop").touch()
        try:
            self.process.wait(timeout=180)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            pytest.fail(f"the load did not stop within 180 s ({self.out})")
        return [json.loads(line) for line in self.out.read_text().splitlines()]

    def records(self) -> list[dict[str, Any]]:
        """The records written so far (commands still being retried are not among them)."""
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line]

    def acked_since(self, moment: float) -> list[dict[str, Any]]:
        """The commands answered 202 whose last try was sent at or after ``moment``."""
        return [r for r in self.records() if r["acked"] and r["sent"] >= moment]

    def recovered(self, cut: float) -> float | None:
        """When the first 202 came after the outage that began at ``cut``, if it came.

        The outage shows as the first failed try after ``cut``; a command or two that the
        dying primary still committed in its last milliseconds does not end it.
        """
        records = self.records()
        failed = [r["first_failure"] for r in records if (r["first_failure"] or 0) >= cut]
        if not failed:
            return None
        began = min(failed)
        after = [r["answered"] for r in records if r["acked"] and r["sent"] >= began]
        return min(after) if after else None


def start_load(cluster: Cluster, label: str) -> Load:
    out = cluster.logs / f"load-{label}.jsonl"
    prefix = f"cluster-{label}-{uuid.uuid4().hex[:8]}"
    urls = [f"http://{host.address}:{host.http_port}" for host in cluster.hosts.values()]
    process = cluster.spawn(
        [sys.executable, "-m", "tests.deploy.cluster_load", str(out), prefix, *urls],
        cluster.logs / f"load-{label}.log",
    )
    return Load(process, out, prefix)


def stored_events(host: Host, pattern: str) -> list[tuple[str, int, str]]:
    """(stream, version, event id) of the events whose stream is ``LIKE pattern``, in the
    table's order, read on ``host`` (the primary) as postgres."""
    sql = (
        "SELECT aggregate_id, version, event_id FROM events "
        "WHERE aggregate_id LIKE :'pattern' ORDER BY id"
    )
    output = host.run(
        f"cd / && echo {quote(sql)} | runuser -u postgres -- psql -X -A -t -q -F ' ' "
        f"-d cqrs_events -v pattern={quote(pattern)}"
    )
    rows = [line.split() for line in output.splitlines() if line]
    return [(stream, int(version), event) for stream, version, event in rows]


def stored(host: Host, prefix: str) -> list[tuple[str, Write]]:
    """The load's events (its users' streams, named ``prefix``-...)."""
    return [
        (stream, Write(stream, version, event))
        for stream, version, event in stored_events(host, f"{prefix}-%")
    ]


def audit(cluster: Cluster, load: Load, records: list[dict[str, Any]]) -> dict[str, int]:
    """Check every 202 is stored exactly once, where it was acknowledged (tests/audit.py),
    and that no command went unacknowledged; return the counts."""
    leader = wait_for_primary(cluster, FAILOVER_TIMEOUT)
    acked = [record for record in records if record["acked"]]
    given_up = [record for record in records if not record["acked"]]
    found = audit_writes(
        [(r["user_id"], Write(r["aggregate_id"], r["version"], r["event_id"])) for r in acked],
        stored(leader, load.prefix),
    )
    figures = {
        "commands": len(records),
        "acknowledged": len(acked),
        "retried": sum(1 for record in acked if record["tries"] > 1),
        "given up": len(given_up),
        "problems": len(found.problems),
    }
    assert not found.problems, f"{figures}: {found.problems[:10]}"
    assert not given_up, f"never acknowledged within 90 s: {given_up[:3]}"
    return figures


def read_models_converged(cluster: Cluster) -> int:
    """Once both projections have applied every event (read on the primary: a standby may
    be behind it), compare both read models with their recomputation from the events, on
    the primary, row by row (``tests/projector/support.READ_MODEL_DIFFERENCES``); the
    number of orders in the read model."""
    leader = wait_for_primary(cluster, FAILOVER_TIMEOUT)
    caught_up = (
        "SELECT count(*) FROM projection_checkpoints"
        " WHERE projection IN ('orders', 'user_order_summaries') AND state = 'running'"
        " AND events_applied = (SELECT count(*) FROM events)"
    )
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while psql(leader, caught_up, "cqrs_events") != "2":
        if time.monotonic() > deadline:
            checkpoints = psql(leader, "SELECT * FROM projection_checkpoints", "cqrs_events")
            pytest.fail(f"projections not caught up in {CATCH_UP_TIMEOUT:.0f} s: {checkpoints}")
        time.sleep(1)
    differences = psql(leader, READ_MODEL_DIFFERENCES, "cqrs_events")
    assert differences == "", f"the read models differ from the events:\n{differences[:3000]}"
    return int(psql(leader, "SELECT count(*) FROM orders", "cqrs_events"))


def wait_for_primary(cluster: Cluster, timeout: float) -> Host:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader = primary(cluster)
        if leader is not None:
            return leader
        time.sleep(1)
    pytest.fail(f"no running primary within {timeout:.0f} s: {members(cluster)}")


def record_figure(cluster: Cluster, line: str) -> None:
    print(f"\ncluster figures: {line}", file=sys.stderr)
    with (cluster.logs / "figures.txt").open("a") as figures:
        figures.write(line + "\n")


def test_each_host_reaches_the_others_at_their_own_addresses(cluster: Cluster) -> None:
    for host in cluster.hosts.values():
        for other in cluster.hosts.values():
            host.run(f"timeout 5 bash -c 'echo > /dev/tcp/{other.address}/22'")
        assert f"inet {host.address}/24" in host.run("ip -4 -o addr show dev host0")


def test_apt_reaches_the_mirror_through_the_relay(cluster: Cluster) -> None:
    host = cluster.hosts["cqrs-db1"]
    host.run(
        "DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
        "apt-get install -y -qq --no-install-recommends etcd-server",
        timeout=600,
    )
    assert "etcd Version: 3." in host.run("etcd --version")


def test_site_makes_a_patroni_cluster_with_a_synchronous_standby(
    cluster: Cluster, installed: ClusterRun
) -> None:
    # Patroni names the synchronous standby within a loop or two of the primary's start.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        roles = sorted(str(member["Role"]) for member in members(cluster))
        if roles == ["Leader", "Replica", "Sync Standby"]:
            break
        time.sleep(1)
    assert roles == ["Leader", "Replica", "Sync Standby"], members(cluster)
    for host in cluster.hosts.values():
        # No cluster of the distribution's own: PostgreSQL runs under Patroni only.
        assert host.run("pg_lsclusters -h").strip() == ""
        assert host.run("systemctl is-active patroni etcd").split() == ["active", "active"]
        assert "target_session_attrs=read-write" in host.run(
            "grep ^CQRS_DATABASE_URL= /etc/cqrs-demo/cqrs-demo.env"
        )
        # Both bind the host's address, which may come up after them at boot: they start
        # after network-online.target and again every 2 s until they can.
        for unit in ("etcd", "patroni"):
            shown = dict(
                line.split("=", 1)
                for line in host.run(
                    f"systemctl show -p Restart -p RestartUSec -p StartLimitIntervalUSec "
                    f"-p After {unit}"
                ).splitlines()
                if "=" in line
            )
            assert (shown["Restart"], shown["RestartUSec"], shown["StartLimitIntervalUSec"]) == (
                "on-failure",
                "2s",
                "0",
            ), (host.name, unit, shown)
            assert "network-online.target" in shown["After"].split(), (host.name, unit, shown)


def test_every_role_connects_with_scram(cluster: Cluster, installed: ClusterRun) -> None:
    leader = wait_for_primary(cluster, 30)
    unscrammed = psql(
        leader,
        "SELECT rolname FROM pg_authid WHERE rolcanlogin "
        "AND (rolpassword IS NULL OR rolpassword NOT LIKE 'SCRAM-SHA-256$%')",
    )
    assert unscrammed == "", f"login roles without a scram password: {unscrammed}"
    methods = psql(leader, "SELECT DISTINCT auth_method FROM pg_hba_file_rules ORDER BY 1")
    assert methods.split() == ["peer", "scram-sha-256"]


def test_patroni_refuses_changes_without_its_password(
    cluster: Cluster, installed: ClusterRun
) -> None:
    host = cluster.hosts["cqrs-db1"]
    api = f"http://{host.address}:8008"
    assert fetch(host, f"{api}/reload", "POST")[0] == 401
    # Reads stay open (health checks), and patronictl, which reads the password from
    # Patroni's configuration, may change things (switchover.yml relies on it).
    status, body = fetch(host, f"{api}/health", "GET")
    assert status == 200, body
    assert json.loads(body)["state"] == "running", body
    assert "Reload request received" in host.run(
        "patronictl -c /etc/patroni/config.yml reload --force cqrs-demo"
    )


def fetch(host: Host, url: str, method: str) -> tuple[int, str]:
    """``method url`` from ``host`` (POST with an empty JSON body): the status and body."""
    script = (
        "import sys,urllib.request,urllib.error\n"
        "data=b'{}' if sys.argv[2]=='POST' else None\n"
        "r=urllib.request.Request(sys.argv[1],data=data,method=sys.argv[2])\n"
        "try:\n r=urllib.request.urlopen(r,timeout=10); print(r.status, r.read().decode())\n"
        "except urllib.error.HTTPError as e: print(e.code, e.read().decode())\n"
    )
    output = host.run(f"python3 -c {quote(script)} {quote(url)} {method}").strip()
    status, _, body = output.partition(" ")
    return int(status), body


def psql(host: Host, sql: str, database: str = "postgres") -> str:
    """Run ``sql`` on ``host`` as the postgres superuser; return psql's unaligned output."""
    return host.run(
        f"cd / && echo {quote(sql)} | runuser -u postgres -- psql -X -A -t -q -d {database}"
    ).strip()


def test_each_api_accepts_a_command(cluster: Cluster, installed: ClusterRun) -> None:
    load = start_load(cluster, "smoke")
    time.sleep(5)
    figures = audit(cluster, load, load.stop())
    urls = {record["url"] for record in load.acked_since(0)}
    assert len(urls) == 3, f"202 only from {urls}"
    record_figure(cluster, f"smoke: {figures}")


@dataclass
class Watch:
    """tests/deploy/cluster_watch.py running inside the namespace: when each host became
    the primary, and how far the projections were, as seen from each API."""

    process: subprocess.Popen[bytes]
    out: Path

    def stop(self) -> list[dict[str, Any]]:
        self.out.with_suffix(".stop").touch()
        self.process.wait(timeout=30)
        return [json.loads(line) for line in self.out.read_text().splitlines() if line]


def start_watch(cluster: Cluster, label: str) -> Watch:
    out = cluster.logs / f"watch-{label}.jsonl"
    pairs = [f"{host.name}={host.address}" for host in cluster.hosts.values()]
    process = cluster.spawn(
        [sys.executable, "-m", "tests.deploy.cluster_watch", str(out), *pairs], None
    )
    return Watch(process, out)


def became_primary(seen: list[dict[str, Any]], old: Host, cut: float) -> float | None:
    """When a host other than ``old`` first answered as the primary after ``cut``."""
    times = [r["t"] for r in seen if r.get("primary") and r["host"] != old.name and r["t"] >= cut]
    return min(times) if times else None


def projector_back(seen: list[dict[str, Any]], since: float) -> float | None:
    """When an API first showed both projections past every count seen up to ``since``
    (the new primary's start): a projector on a live host had taken the locks and applied."""
    before = [r["applied"] for r in seen if "applied" in r and r["t"] <= since]
    floor = max(before, default=-1)
    after = [r["t"] for r in seen if "applied" in r and r["t"] > since and r["applied"] > floor]
    return min(after) if after else None


def whole(cluster: Cluster) -> list[str]:
    """What keeps the cluster from being whole (empty when nothing does): every host up, its
    Patroni running, one leader whose PostgreSQL streams to both others, every etcd member
    healthy. A drill that starts on less measures a cluster that has already lost a host."""
    down = [name for name, host in cluster.hosts.items() if not powered_on(host)]
    if down:
        return [f"powered off: {', '.join(down)}"]
    try:
        listed = {str(member["Member"]): member for member in members(cluster)}
    except HostError as error:
        return [str(error)]
    problems = [
        f"{name}: Patroni {listed[name].get('Role')} {listed[name].get('State')}"
        if name in listed
        else f"{name}: not among Patroni's members"
        for name in cluster.hosts
        if listed.get(name, {}).get("State") not in ("running", "streaming")
    ]
    leaders = [name for name, member in listed.items() if member.get("Role") == "Leader"]
    if len(leaders) != 1:
        return [*problems, f"leaders: {leaders}"]
    leader = cluster.hosts[leaders[0]]
    try:
        streaming = psql(
            leader,
            "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
        ).split()
    except HostError as error:
        return [*problems, str(error)]
    problems += [
        f"{name}: not streaming from {leader.name} (pg_stat_replication: {streaming})"
        for name in cluster.hosts
        if name != leader.name and name not in streaming
    ]
    endpoints = ",".join(f"http://{host.address}:2379" for host in cluster.hosts.values())
    health = leader.try_run(
        f"etcdctl --endpoints={endpoints} --dial-timeout=2s --command-timeout=3s "
        "endpoint health -w json",
        timeout=30,
    )
    try:
        members_health = json.loads(health.stdout)
    except json.JSONDecodeError:
        return [*problems, f"etcdctl endpoint health exited {health.returncode}: {health.stderr}"]
    problems += [
        f"etcd at {member['endpoint']}: {member.get('error') or 'unhealthy'}"
        for member in members_health
        if not member.get("health")
    ]
    if len(members_health) != len(cluster.hosts):
        problems.append(f"etcd answered for {len(members_health)} endpoints: {health.stderr}")
    return problems


def powered_on(host: Host) -> bool:
    return host.process is not None and host.process.poll() is None


def services(cluster: Cluster) -> dict[str, str]:
    """etcd's and Patroni's state on each host that is on, and etcd's last lines: the
    evidence when the cluster does not become whole."""
    command = (
        "systemctl is-active etcd patroni | paste -sd ' '; "
        "journalctl -u etcd -n 3 --no-pager -o cat | cut -c1-200"
    )
    return {
        name: host.try_run(command, timeout=30).stdout.strip()
        for name, host in cluster.hosts.items()
        if powered_on(host)
    }


def wait_until_whole(cluster: Cluster, timeout: float, moment: str) -> float:
    """Wait until :func:`whole` finds nothing wrong; return how long that took. Fails with
    what is still wrong after ``timeout`` seconds: the cluster did not heal by itself."""
    started = time.monotonic()
    while problems := _whole_or_why_not(cluster):
        if time.monotonic() - started > timeout:
            pytest.fail(
                f"{moment}: the cluster not whole within {timeout:.0f} s: {problems}; "
                f"etcd and patroni on each host: {services(cluster)}",
                pytrace=False,
            )
        time.sleep(2)
    return time.monotonic() - started


def _whole_or_why_not(cluster: Cluster) -> list[str]:
    """:func:`whole`, with a host that answers too slowly as one more thing wrong."""
    try:
        return whole(cluster)
    except (HostError, subprocess.TimeoutExpired) as error:
        return [f"{type(error).__name__}: {error}"]


def address_late(host: Host) -> None:
    """Make ``host``'s address come :data:`ADDRESS_LATE` seconds into its next boot, after
    etcd and Patroni have started, as it may on a real host (systemd-networkd configures
    addresses after network.target). Booted again, the host must still rejoin: etcd and
    Patroni have to start again once the address is there (CI once lost etcd's majority
    when etcd did not). systemd-networkd configures ``host0`` as on the first boot, only
    later: its file is put back in place and networkd reloaded by a unit of the test's."""
    network = host.root / "etc/systemd/network"
    (network / "10-host0.network").rename(network / "10-host0.network.late")
    unit = "cqrs-demo-tests-late-address.service"
    (host.root / "etc/systemd/system" / unit).write_text(
        "[Unit]\nDescription=cqrs-demo tests: this host's address, late\n"
        "After=systemd-networkd.service\n\n[Service]\nType=exec\n"
        f"ExecStart=/bin/sh -c 'sleep {ADDRESS_LATE:.0f} && "
        "mv /etc/systemd/network/10-host0.network.late /etc/systemd/network/10-host0.network "
        "&& networkctl reload'\n"
    )
    wants = host.root / "etc/systemd/system/multi-user.target.wants" / unit
    wants.unlink(missing_ok=True)
    wants.symlink_to(f"/etc/systemd/system/{unit}")


def power_cut_drill(cluster: Cluster, number: int) -> dict[str, Any]:
    """One drill: load, power cut of the primary's host, the figures, its return as a
    replica. Starts only on a whole cluster; returns the figures. The load and the watch
    end, and the host is powered on again, whether the drill passes or fails."""
    wait_until_whole(cluster, WHOLE_TIMEOUT, f"before power cut {number}")
    old = wait_for_primary(cluster, 30)
    etcd = json.loads(old.run("etcdctl --endpoints=http://127.0.0.1:2379 endpoint status -w json"))
    etcd_leader_too = etcd[0]["Status"]["leader"] == etcd[0]["Status"]["header"]["member_id"]
    watch = start_watch(cluster, f"power-cut-{number}")
    load = start_load(cluster, f"power-cut-{number}")
    try:
        time.sleep(10)
        cut = time.time()
        old.power_cut()
        deadline = time.monotonic() + FAILOVER_TIMEOUT
        while load.recovered(cut) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        recovered = load.recovered(cut)
        assert recovered, (
            f"no 202 within {FAILOVER_TIMEOUT:.0f} s of the power cut: {members(cluster)}"
        )
        time.sleep(10)
        counts = audit(cluster, load, load.stop())
        seen = watch.stop()
        orders = read_models_converged(cluster)
    finally:
        end(load.process)
        end(watch.process)
        started = time.monotonic()
        if not powered_on(old):
            address_late(old)
            old.boot()
    new = wait_for_primary(cluster, 10)
    assert new is not old
    writes = became_primary(seen, old, cut)
    assert writes is not None, f"no host answered as the primary after the cut ({watch.out})"
    projector = projector_back(seen, writes)
    assert projector is not None, f"the projections did not move after the cut ({watch.out})"
    figures = {
        "drill": number,
        "cut": old.name,
        "etcd leader too": etcd_leader_too,
        "new primary": new.name,
        "primary accepts writes s": round(writes - cut, 1),
        "first 202 s": round(recovered - cut, 1),
        "first 202 after primary s": round(recovered - writes, 2),
        "projector running s": round(projector - cut, 1),
        **counts,
        "lost": counts["problems"],
        "orders audited in the read models": orders,
    }
    record_figure(cluster, f"power cut: {json.dumps(figures)}")
    wait_until_whole(cluster, REJOIN_TIMEOUT, f"{old.name} booted again after power cut {number}")
    back = time.monotonic() - started
    refused = old.run(
        "journalctl -b -u etcd -u patroni -o cat | grep -c 'cannot assign requested address'",
        check=False,
    ).strip()
    record_figure(
        cluster,
        f"{old.name} back (a streaming replica, its etcd member healthy) {back:.0f} s after "
        f"its boot; starts refused the address before it came: {refused}",
    )
    return figures


def test_power_cuts_of_the_primary_lose_nothing_and_it_rejoins(
    cluster: Cluster, installed: ClusterRun
) -> None:
    drills = [power_cut_drill(cluster, number) for number in range(1, DRILLS + 1)]
    medians = {
        key: statistics.median(drill[key] for drill in drills)
        for key in (
            "primary accepts writes s",
            "first 202 s",
            "first 202 after primary s",
            "projector running s",
            "acknowledged",
        )
    }
    record_figure(cluster, f"power cuts, medians of {len(drills)}: {json.dumps(medians)}")
    verify = run_playbook(
        cluster, "verify.yml", label="2-verify-after-power-cut", extra_vars=cluster.release_vars
    )
    assert verify.succeeded, verify.summary()


def http(host: Host, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """``method path`` on ``host``'s own API (from the host); the status and JSON body."""
    script = (
        "import json,sys,urllib.request,urllib.error\n"
        "data=sys.argv[3].encode() or None\n"
        "r=urllib.request.Request('http://127.0.0.1:8080'+sys.argv[2],data=data,method=sys.argv[1],"
        "headers={'Content-Type':'application/json'})\n"
        "try:\n r=urllib.request.urlopen(r,timeout=15); print(r.status, r.read().decode())\n"
        "except urllib.error.HTTPError as e: print(e.code, e.read().decode())\n"
    )
    payload = json.dumps(body) if body is not None else ""
    output = host.run(
        f"python3 -c {quote(script)} {quote(method)} {quote(path)} {quote(payload)}"
    ).strip()
    status, _, text = output.partition(" ")
    return int(status), json.loads(text) if text else None


def test_queries_read_from_a_standby_and_min_position_holds_there(
    cluster: Cluster, installed: ClusterRun
) -> None:
    leader = wait_for_primary(cluster, 30)
    standbys = [host for host in cluster.hosts.values() if host is not leader]
    for host in cluster.hosts.values():
        line = host.run("grep ^CQRS_READ_DATABASE_URL= /etc/cqrs-demo/cqrs-demo.env")
        assert "target_session_attrs=prefer-standby" in line, line
    user = f"cluster-read-{uuid.uuid4().hex[:8]}"
    order = {"user_id": user, "product_id": "prod_456", "quantity": 1, "total_price": 10.0}
    status, answer = http(standbys[0], "POST", "/api/commands/order/create", order)
    assert status == 202, answer
    # Asked on another host, at once: its queries read a standby, and min_position makes
    # the answer wait until that standby has replayed and projected the command.
    path = f"/api/queries/users/{user}/summary?min_position={answer['position']}&wait_ms=5000"
    status, summary = http(standbys[1], "GET", path)
    assert status == 200, summary
    assert summary["orders_placed"] == 1, summary
    # That host's read pool is on a standby: whichever answered first (its connections race
    # the servers of its list: store/connect.py), not necessarily its own, which after a
    # power cut of this host came back later than the other one.
    sessions = {
        standby.name: int(
            psql(
                standby,
                "SELECT count(*) FROM pg_stat_activity WHERE usename = 'cqrs_app'"
                f" AND client_addr = '{standbys[1].address}'",
            )
        )
        for standby in standbys
    }
    assert sum(sessions.values()) > 0, f"no cqrs_app session of {standbys[1].name}: {sessions}"


def test_status_shows_the_primary_it_writes_to_and_the_standby_it_reads(
    cluster: Cluster, installed: ClusterRun
) -> None:
    # The documented command (docs/operations.md, "One status screen"), on a host whose
    # queries read a standby (CQRS_READ_DATABASE_URL, prefer-standby).
    leader = wait_for_primary(cluster, 30)
    command = host_commands("## One status screen")[0].removeprefix("sudo ")
    screen = leader.try_run(command)
    (cluster.logs / f"status-{leader.name}.txt").write_text(screen.stdout + screen.stderr)
    assert re.search(r"^ok +database +\S+ reachable, primary, ", screen.stdout, re.M), screen.stdout
    read = re.search(
        r"^ok +read database +\S+ reachable \((\S+) answered\), standby, .*;"
        r" the queries read here$",
        screen.stdout,
        re.M,
    )
    assert read, screen.stdout
    assert leader.address not in read[1], screen.stdout


def test_switchover_under_load_loses_nothing(cluster: Cluster, installed: ClusterRun) -> None:
    old = wait_for_primary(cluster, 30)
    load = start_load(cluster, "switchover")
    time.sleep(5)
    run = run_playbook(cluster, "switchover.yml", label="3-switchover")
    time.sleep(5)
    figures = audit(cluster, load, load.stop())
    assert run.succeeded, run.summary()
    new = wait_for_primary(cluster, 10)
    assert new is not old
    record_figure(cluster, f"switchover {old.name} -> {new.name}: {figures}")


def test_site_with_a_database_host_down_stops_naming_it(
    cluster: Cluster, installed: ClusterRun
) -> None:
    """A replica's host powered off, site.yml: it stops before changing anything, naming
    the host (it used to say the inventory named two database hosts); the host is booted
    again and the cluster heals."""
    wait_until_whole(cluster, WHOLE_TIMEOUT, "before a host is powered off for site.yml")
    leader = wait_for_primary(cluster, 30)
    down = next(host for host in cluster.hosts.values() if host is not leader)
    down.power_cut()
    try:
        run = run_playbook(
            cluster, "site.yml", label="5-site-host-down", extra_vars=cluster.release_vars
        )
    finally:
        down.boot()
    output = run.log.read_text(errors="replace")
    assert not run.succeeded, run.summary()
    assert f"{down.name} did not answer: the cluster mode changes" in output, run.summary()
    assert "the inventory names 2" not in output, run.summary()
    assert set(run.changed.values()) == {0}, run.summary()
    wait_until_whole(cluster, REJOIN_TIMEOUT, f"{down.name} booted again after site.yml")


# The throughput step: this many connections in all, spread over the API hosts used.
THROUGHPUT_CONNECTIONS = 24
THROUGHPUT_SECONDS = 5


def unbounded_load(cluster: Cluster, hosts: list[Host], label: str) -> tuple[float, int]:
    """wrk with tests/bench/create_order.lua against each of ``hosts`` at once, for
    ``THROUGHPUT_SECONDS``, from inside the namespace: the 202s per second of all of them,
    and the 202s; every 202 is then found stored once on the primary, and every answer was
    a 202."""
    nonce = f"tp{uuid.uuid4().hex[:10]}"
    connections = THROUGHPUT_CONNECTIONS // len(hosts)
    runs = []
    for host in hosts:
        acks = cluster.logs / f"throughput-{label}-{host.name}.acks"
        command = [
            *("wrk", "-t1", f"-c{connections}", f"-d{THROUGHPUT_SECONDS}s", "--timeout", "5s"),
            *("-s", str(REPO / "tests/bench/create_order.lua")),
            f"http://{host.address}:{host.http_port}/",
            *("--", f"{nonce}{host.name}", str(acks)),
        ]
        process = subprocess.Popen(
            cluster.network.enter(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        cluster.processes.append(process)
        runs.append((process, acks))
    results = []
    for process, acks in runs:
        printed, _ = process.communicate(timeout=THROUGHPUT_SECONDS + 60)
        (acks.parent / f"{acks.name}.out").write_bytes(printed)
        results.append(parse_wrk_output(printed.decode(), acks, connections, 0.0))
    assert all(result.errors == 0 for result in results), [r.statuses for r in results]
    acknowledged = [
        (str(ack.aggregate_id), Write(str(ack.aggregate_id), int(ack.version or 0)))
        for result in results
        for ack in result.acks
    ]
    leader = wait_for_primary(cluster, 30)
    stored_rows = [  # the user ids are u-RANDOM-NONCE-THREAD-N; wrk knows no event ids
        (stream, Write(stream, version))
        for stream, version, _ in stored_events(leader, f"%-{nonce}%")
    ]
    found = audit_writes(acknowledged, stored_rows, unanswered=THROUGHPUT_CONNECTIONS)
    assert not found.problems, found.problems[:10]
    return sum(result.rps for result in results), len(acknowledged)


def test_throughput_by_api_hosts_is_measured_and_every_202_stored(
    cluster: Cluster, installed: ClusterRun
) -> None:
    """Commands/s with 1, 2 and 3 API hosts taking them, 24 connections in all: a figure of
    this machine, whose two cores every host shares (docs/scaling.md), not a scaling claim."""
    wait_until_whole(cluster, WHOLE_TIMEOUT, "before the throughput step")
    hosts = list(cluster.hosts.values())
    figures = {}
    for count in range(1, len(hosts) + 1):
        rate, acknowledged = unbounded_load(cluster, hosts[:count], f"{count}-apis")
        assert acknowledged > 0
        figures[f"{count} API host{'s' if count > 1 else ''}"] = round(rate)
    record_figure(
        cluster,
        f"throughput, {THROUGHPUT_CONNECTIONS} connections in all, {THROUGHPUT_SECONDS} s each,"
        f" commands/s: {json.dumps(figures)}",
    )


def test_a_second_run_changes_nothing(cluster: Cluster, installed: ClusterRun) -> None:
    run = run_playbook(cluster, "site.yml", label="4-site-again", extra_vars=cluster.release_vars)
    assert run.succeeded, run.summary()
    assert set(run.changed.values()) == {0}, run.summary()
