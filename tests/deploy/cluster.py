"""Three booted Debian hosts with addresses of their own, for the cluster mode's tests.

The hosts of tests/deploy/hosts.py share this machine's loopback; a cluster needs hosts that
reach each other at addresses of their own. So the run makes a network namespace of its own
(``cqrs-cl-<pid>``), a bridge inside it with an address, and boots each host with
systemd-nspawn inside that namespace (``nsenter --net=``; ``ip netns exec`` remounts /sys and
nspawn then fails), attached to the bridge. Each host gets a static address by a
systemd-networkd ``.network`` file for its ``host0`` and a default route via the bridge,
which leads nowhere: the namespace has no other interface, so no traffic leaves it and
nothing else on the machine is touched. Everything that talks to the hosts (SSH, ansible,
the load) runs inside the namespace.

apt on the hosts reaches the Debian mirror through a relay: one ``socat`` in this machine's
namespace from a unix socket to the mirror (port 80), one inside the namespace from the
bridge's address to that socket, and ``Acquire::http::Proxy`` on the hosts pointing at it.

Only processes started here are stopped, by their PID; the namespace is deleted at the end,
whatever happened.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from tests.deploy.hosts import (
    MIRROR,
    Host,
    HostError,
    cache_dir,
    make_key,
    prepare,
    rootfs_tarball,
    unpack,
)
from tests.deploy.playbooks import _RECAP, ANSIBLE, PLAYBOOK_TIMEOUT, REPO, _ansible_environment

T = TypeVar("T")

SUBNET = "10.77.0"
PREFIX = 24
BRIDGE = "br0"
BRIDGE_ADDRESS = f"{SUBNET}.1"
APT_PROXY_PORT = 3142
# Machine names distinct from the other deployment tests' deb12 and deb13.
NAMES = ("cqrs-db1", "cqrs-db2", "cqrs-db3")
RELAY_TIMEOUT = 10.0


@dataclass
class Network:
    """A network namespace with a bridge, and the apt relay into it."""

    name: str
    work: Path
    relays: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def enter(self, command: list[str]) -> list[str]:
        """``command`` run inside the namespace."""
        return ["nsenter", f"--net={self.path}", *command]

    def create(self) -> None:
        """Make the namespace, its loopback and the bridge with its address."""
        for command in (
            ["ip", "netns", "add", self.name],
            ["ip", "-n", self.name, "link", "set", "lo", "up"],
            ["ip", "-n", self.name, "link", "add", BRIDGE, "type", "bridge"],
            ["ip", "-n", self.name, "addr", "add", f"{BRIDGE_ADDRESS}/{PREFIX}", "dev", BRIDGE],
            ["ip", "-n", self.name, "link", "set", BRIDGE, "up"],
        ):
            _run(command)

    def start_apt_relay(self) -> None:
        """Relay http://BRIDGE_ADDRESS:APT_PROXY_PORT in the namespace to the Debian mirror."""
        mirror = urlsplit(MIRROR)
        socket_path = self.work / "apt-relay.sock"
        outside = [
            "socat",
            f"UNIX-LISTEN:{socket_path},fork,unlink-early,mode=600",
            f"TCP:{mirror.hostname}:{mirror.port or 80}",
        ]
        inside = self.enter(
            [
                "socat",
                f"TCP-LISTEN:{APT_PROXY_PORT},bind={BRIDGE_ADDRESS},fork,reuseaddr",
                f"UNIX-CONNECT:{socket_path}",
            ]
        )
        log = (self.work / "logs" / "apt-relay.log").open("ab")
        for command in (outside, inside):
            self.relays.append(
                subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            _wait_for_listener(self.relays[-1], command)
        log.close()

    def destroy(self) -> None:
        """Stop the relays (by PID) and delete the namespace; never raises."""
        for relay in self.relays:
            if relay.poll() is None:
                relay.send_signal(signal.SIGTERM)
                try:
                    relay.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    relay.kill()
                    relay.wait(timeout=10)
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, timeout=30)


@dataclass
class Cluster:
    """The booted hosts, by name, in their namespace."""

    network: Network
    hosts: dict[str, Host]
    work: Path
    timings: dict[str, float] = field(default_factory=dict)
    # The release the tests install (cqrs_demo_release_dir, cqrs_demo_release).
    release_vars: dict[str, object] = field(default_factory=dict)
    # Every process started in the background for the tests (the load, the watch, the
    # playbooks): ended by its PID at teardown if it still runs, whatever happened.
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    def spawn(self, command: list[str], output: Path | None) -> subprocess.Popen[bytes]:
        """Start ``command`` inside the namespace, in a session of its own, its output
        appended to ``output`` (discarded if None); it is ended at teardown if still running."""
        log = output.open("ab") if output is not None else None
        try:
            process = subprocess.Popen(
                self.network.enter(command),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log if log is not None else subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if log is not None:
                log.close()
        self.processes.append(process)
        return process

    def end_processes(self) -> None:
        """End every process :meth:`spawn` started that still runs: SIGTERM, then SIGKILL
        after 10 s, each by its PID; never raises."""
        for process in self.processes:
            end(process)

    def each(self, action: Callable[[Host], T]) -> dict[str, T]:
        """Do ``action`` on every host at once; return the results by host name."""
        with ThreadPoolExecutor(len(self.hosts)) as pool:
            futures = {name: pool.submit(action, host) for name, host in self.hosts.items()}
            return {name: future.result() for name, future in futures.items()}


def end(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """End ``process`` (one this run started) if it still runs: SIGTERM, then SIGKILL after
    ``grace`` seconds; wait for it either way, so nothing is left behind. Never raises."""
    if process.poll() is not None:
        return
    try:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        print(f"\ncould not end process {process.pid}: {error}", file=sys.stderr)


def address_of(index: int) -> str:
    """The address of the ``index``-th host (0-based): 10.77.0.11, .12, ..."""
    return f"{SUBNET}.{11 + index}"


def give_network(host: Host, names: Mapping[str, str]) -> None:
    """Give a prepared root filesystem its static address, the hosts' names and the apt proxy."""
    root = host.root
    (root / "etc/systemd/network").mkdir(parents=True, exist_ok=True)
    (root / "etc/systemd/network/10-host0.network").write_text(
        "[Match]\nName=host0\n\n[Network]\n"
        f"Address={host.address}/{PREFIX}\nGateway={BRIDGE_ADDRESS}\nLinkLocalAddressing=no\n"
        "IPv6AcceptRA=no\n"
    )
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "systemd-networkd.service"
    link.unlink(missing_ok=True)
    link.symlink_to("/lib/systemd/system/systemd-networkd.service")
    (root / "etc/hosts").write_text(
        "127.0.0.1 localhost\n" + "".join(f"{address} {name}\n" for name, address in names.items())
    )
    (root / "etc/apt/apt.conf.d/01cqrs-demo-tests-proxy").write_text(
        f'Acquire::http::Proxy "http://{BRIDGE_ADDRESS}:{APT_PROXY_PORT}";\n'
    )


@contextmanager
def booted_cluster(suite: str = "bookworm") -> Iterator[Cluster]:
    """Boot the three hosts of ``suite`` in a namespace of their own; tear all of it down after.

    Yields once every host answers SSH with systemd up. On the way out, whatever happened:
    the hosts' journals are kept in the logs directory, the hosts powered off, the relays
    stopped, the namespace deleted, the root filesystems, releases and key removed (unless
    CQRS_TEST_KEEP=1); the logs stay.
    """
    started = time.monotonic()
    work = Path(f"/var/tmp/cqrs-demo-cluster-{os.getpid()}-{time.strftime('%Y%m%dT%H%M%S')}")
    (work / "logs").mkdir(parents=True)
    cache = cache_dir()
    network = Network(f"cqrs-cl-{os.getpid()}", work)
    key = make_key(work)
    tarball = rootfs_tarball(suite, cache, work)
    names = {name: address_of(index) for index, name in enumerate(NAMES)}
    hosts = {
        name: Host(
            name=name,
            suite=suite,
            root=work / name,
            logs=work / "logs",
            key=key,
            known_hosts=work / "known_hosts",
            # One cache per host: apt locks its archives directory while it downloads.
            apt_cache=cache / f"apt-{suite}-{name}",
            ssh_port=22,
            postgresql_port=5432,
            http_port=8080,
            address=address,
            netns=network.name,
            bridge=BRIDGE,
        )
        for name, address in names.items()
    }
    cluster = Cluster(network, hosts, work)
    try:
        network.create()
        network.start_apt_relay()
        for host in hosts.values():
            unpack(tarball, host.root)
            prepare(host)
            give_network(host, names)
        cluster.each(Host.boot)
        cluster.timings["hosts booted"] = time.monotonic() - started
        yield cluster
    finally:
        # Each step whatever the one before did: a host that would not power off must not
        # leave the load, the relays or the namespace behind. What failed is raised last.
        errors: list[str] = []
        for step in (
            lambda: cluster.each(_save_journal),
            cluster.end_processes,
            lambda: cluster.each(Host.shut_down),
            network.destroy,
        ):
            try:
                step()
            except Exception as error:  # the next step runs all the same; raised below
                errors.append(f"{type(error).__name__}: {error}")
        cluster.timings["total"] = time.monotonic() - started
        (work / "logs" / "timings.txt").write_text(
            "".join(f"{label}: {seconds:.0f} s\n" for label, seconds in cluster.timings.items())
        )
        if os.environ.get("CQRS_TEST_KEEP") != "1":
            for path in (*(host.root for host in hosts.values()), work / "releases"):
                subprocess.run(["rm", "-rf", "--one-file-system", str(path)], timeout=300)
            for path in (key, key.with_suffix(".pub"), work / "known_hosts"):
                path.unlink(missing_ok=True)
        print(f"\ncluster tests: logs in {work / 'logs'}", file=sys.stderr)
        if errors:
            raise HostError(f"cluster teardown: {'; '.join(errors)}")


@dataclass(frozen=True)
class ClusterRun:
    """One ansible-playbook run against the whole cluster: exit status and each host's recap."""

    returncode: int
    recaps: dict[str, dict[str, int]]
    log: Path

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and all(
            recap["failed"] == 0 and recap["unreachable"] == 0 for recap in self.recaps.values()
        )

    @property
    def changed(self) -> dict[str, int]:
        return {name: recap["changed"] for name, recap in self.recaps.items()}

    def summary(self) -> str:
        """The end of the output, for assertion messages."""
        output = self.log.read_text(errors="replace")
        return f"{self.log} (exit {self.returncode}):\n" + output[-6000:]


def write_inventory(cluster: Cluster, extra: Mapping[str, object] | None = None) -> Path:
    """The three-host cluster inventory: every host a database node and an API host."""
    some = next(iter(cluster.hosts.values()))
    connection = {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(some.key),
        "ansible_ssh_common_args": " ".join(
            f"-o {option}"
            for option in (
                "IdentitiesOnly=yes",
                "BatchMode=yes",
                f"UserKnownHostsFile={some.known_hosts}",
                "StrictHostKeyChecking=yes",
                "ConnectTimeout=5",
                "LogLevel=ERROR",
            )
        ),
        "ansible_become_method": "su",
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    inventory = {
        "all": {
            "vars": {
                **connection,
                "cqrs_cluster_enabled": True,
                # The API on every address, so the load reaches each host's from outside.
                "cqrs_demo_listen_host": "0.0.0.0",
                # Three hosts share this machine's memory and two CPUs.
                "cqrs_postgresql_shared_buffers": "64MB",
                "cqrs_postgresql_effective_cache_size": "512MB",
                "cqrs_demo_workers": 1,
                "cqrs_demo_pool_max_size": 10,
                **(extra or {}),
            },
            "hosts": {name: {"ansible_host": host.address} for name, host in cluster.hosts.items()},
            "children": {
                "cqrs_db": {"hosts": dict.fromkeys(cluster.hosts)},
                "cqrs_api": {"hosts": dict.fromkeys(cluster.hosts)},
            },
        }
    }
    path = cluster.logs / "inventory-cluster.yml"
    path.write_text(json.dumps(inventory, indent=2))
    return path


def run_playbook(
    cluster: Cluster,
    playbook: str,
    *,
    label: str,
    extra_vars: Mapping[str, object] | None = None,
    timeout: float = PLAYBOOK_TIMEOUT,
) -> ClusterRun:
    """Run ``ansible/<playbook>`` against the cluster, from inside its namespace."""
    started = time.monotonic()
    log = cluster.logs / f"{label}.log"
    command = [
        str(Path(sys.executable).with_name("ansible-playbook")),
        "--inventory",
        str(write_inventory(cluster)),
        str(ANSIBLE / playbook),
    ]
    if extra_vars:
        command += ["--extra-vars", json.dumps(dict(extra_vars))]
    some = next(iter(cluster.hosts.values()))
    with log.open("wb") as output:
        process = subprocess.Popen(
            cluster.network.enter(command),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=_ansible_environment(some),
            start_new_session=True,
        )
    cluster.processes.append(process)
    try:
        returncode = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        end(process)
        returncode = process.returncode
    cluster.timings[label] = time.monotonic() - started
    counts = ("ok", "changed", "unreachable", "failed")
    recaps = {
        match["host"]: {name: int(match[name]) for name in counts}
        for match in _RECAP.finditer(log.read_text(errors="replace"))
    }
    return ClusterRun(returncode if recaps else returncode or 1, recaps, log)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise HostError(
            f"`{' '.join(command)}` exited {result.returncode}: {result.stderr.strip()}"
        )


def _wait_for_listener(process: subprocess.Popen[bytes], command: list[str]) -> None:
    """Give socat a moment to bind; fail if it exited instead."""
    deadline = time.monotonic() + RELAY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HostError(f"`{' '.join(command)}` exited {process.returncode}")
        if _listening(process.pid):
            return
        time.sleep(0.1)
    raise HostError(f"`{' '.join(command)}` not listening after {RELAY_TIMEOUT:.0f} s")


def _listening(pid: int) -> bool:
    """Whether the process holds a listening socket (unix or TCP) yet."""
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    return any(os.readlink(fd).startswith("socket:") for fd in descriptors if fd.is_symlink())


def _save_journal(host: Host) -> None:
    """Keep the cluster's and the service's journal with the logs (best effort)."""
    if host.process is None or host.process.poll() is not None:
        return
    try:
        journal = host.try_run(
            "journalctl --no-pager -o short-iso -u 'cqrs-demo*' -u patroni -u etcd",
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return
    (host.logs / f"journal-{host.name}-{host.boots}.log").write_text(
        journal.stdout + journal.stderr
    )


def members(cluster: Cluster) -> list[dict[str, object]]:
    """``patronictl list`` as JSON, asked on the first host that answers."""
    errors = []
    for host in cluster.hosts.values():
        if host.process is None or host.process.poll() is not None:
            continue
        result = host.try_run(
            "patronictl -c /etc/patroni/config.yml list --format json", timeout=20
        )
        if result.returncode == 0:
            listed: list[dict[str, object]] = json.loads(result.stdout)
            return listed
        errors.append(f"{host.name}: {result.stderr.strip()}")
    raise HostError(f"no host answered patronictl list: {errors}")


def primary(cluster: Cluster) -> Host | None:
    """The host Patroni lists as the leader and running, if any."""
    for member in members(cluster):
        if member.get("Role") == "Leader" and member.get("State") == "running":
            return cluster.hosts[str(member["Member"])]
    return None
