"""Booted Debian hosts for the deployment tests: debootstrap, systemd-nspawn --boot, SSH.

Each host is a root filesystem made by debootstrap (cached as a tarball between runs),
booted with ``systemd-nspawn --boot`` in the background and reached over SSH as root with a
key made for the run. By default the hosts share this machine's network namespace, so
nothing needs routing or NAT: every port a host uses (sshd, PostgreSQL, the API) is a free
one on 127.0.0.1 chosen for the run, and every address the tests reach is loopback. A host
given a network namespace and a bridge in it (tests/deploy/cluster.py) gets a network of its
own instead: nspawn runs inside that namespace, attached to the bridge, and SSH to its
``address`` runs inside the namespace too.

Only processes started here are stopped, by their PID. Every wait has a deadline.
"""

import hashlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

MIRROR = "http://deb.debian.org/debian"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "iproute2",
)
# Bumped when the recipe changes in a way the cache key does not see.
RECIPE_VERSION = "1"
BOOT_TIMEOUT = 120.0
SHUTDOWN_TIMEOUT = 60.0
# The hosts' systemd on the unified cgroup hierarchy (cgroup v2 alone), as Ubuntu 24.04,
# Debian 12 and Debian 13 boot by default. Without it nspawn copies this machine's hybrid
# layout (v1 controllers, v2 beside them), where the hosts' systemd now and then failed to
# start a unit right after another had stopped ("status=219/CGROUP", "Failed to spawn
# executor: No such file or directory"): a failure of the test hosts, not of the units.
NSPAWN_ENVIRONMENT = {"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
NSPAWN_REBOOT_EXIT = 133  # systemd-nspawn's exit status when the container asked to reboot


class HostError(Exception):
    """A host could not be built, booted, reached or stopped."""


@dataclass
class Host:
    """One booted Debian host and the loopback ports chosen for it."""

    name: str
    suite: str
    root: Path
    logs: Path
    key: Path
    known_hosts: Path
    apt_cache: Path
    ssh_port: int = field(default_factory=lambda: free_port())
    postgresql_port: int = field(default_factory=lambda: free_port())
    http_port: int = field(default_factory=lambda: free_port())
    metrics_port: int = field(default_factory=lambda: free_port())
    projector_metrics_port: int = field(default_factory=lambda: free_port())
    prometheus_port: int = field(default_factory=lambda: free_port())
    process: subprocess.Popen[bytes] | None = None
    boots: int = 0
    # Where sshd listens; the namespace and bridge the host is booted in, if any.
    address: str = "127.0.0.1"
    netns: str | None = None
    bridge: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def in_namespace(self, command: list[str]) -> list[str]:
        """``command`` run in the host's network namespace (as is without one)."""
        if self.netns is None:
            return command
        return ["nsenter", f"--net=/run/netns/{self.netns}", *command]

    def ssh_command(self, command: str) -> list[str]:
        return self.in_namespace(
            [
                "ssh",
                *ssh_options(self.key, self.known_hosts),
                "-p",
                str(self.ssh_port),
                f"root@{self.address}",
                command,
            ]
        )

    def run(self, command: str, *, timeout: float = 60.0, check: bool = True) -> str:
        """Run a shell command on the host as root; return its stdout."""
        result = subprocess.run(
            self.ssh_command(command), capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise HostError(
                f"{self.name}: `{command}` exited {result.returncode}: "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result.stdout

    def try_run(self, command: str, *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a shell command on the host as root; return the whole result, whatever it is."""
        return subprocess.run(
            self.ssh_command(command), capture_output=True, text=True, timeout=timeout
        )

    def boot(self) -> None:
        """Start systemd-nspawn --boot in the background; return once sshd answers."""
        self.boots += 1
        console = (self.logs / f"{self.name}-console-{self.boots}.log").open("wb")
        network = [] if self.bridge is None else [f"--network-bridge={self.bridge}"]
        self.process = subprocess.Popen(
            self.in_namespace(
                [
                    "systemd-nspawn",
                    "--boot",
                    "--register=no",
                    "--keep-unit",
                    "--console=read-only",
                    "--link-journal=no",
                    "--resolv-conf=copy-host",
                    f"--machine={self.name}",
                    f"--directory={self.root}",
                    f"--bind={self.apt_cache}:/var/cache/apt/archives",
                    *network,
                ]
            ),
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **NSPAWN_ENVIRONMENT},
        )
        console.close()
        self.wait_until_up()

    def wait_until_up(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Wait until sshd answers and systemd has finished starting up."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise HostError(f"{self.name}: systemd-nspawn exited {self.process.returncode}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HostError(f"{self.name}: not up after {timeout:.0f} s")
            try:
                state = self.try_run(
                    f"timeout {max(1, int(remaining))} systemctl is-system-running --wait",
                    timeout=remaining + 5,
                ).stdout.strip()
            except subprocess.TimeoutExpired:
                continue
            if state in ("running", "degraded"):
                return
            time.sleep(1)

    def reboot(self) -> None:
        """Reboot from inside, as an operator would; start the machine again; wait for it."""
        assert self.process is not None
        self.try_run("systemctl reboot", timeout=30)
        try:
            status = self.process.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise HostError(
                f"{self.name}: still running {SHUTDOWN_TIMEOUT:.0f} s after reboot"
            ) from None
        if status != NSPAWN_REBOOT_EXIT:
            raise HostError(
                f"{self.name}: systemd-nspawn exited {status}, not {NSPAWN_REBOOT_EXIT}"
            )
        self.boot()

    def power_cut(self) -> None:
        """Cut the power: SIGKILL to the host's init, which ends every process it has at once.

        Nothing inside gets to shut down cleanly (no service stops, no lock is released);
        systemd-nspawn then exits, and :meth:`boot` starts the host again.
        """
        assert self.process is not None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if len(children) != 1:
            raise HostError(f"{self.name}: systemd-nspawn {pid} has children {children}, not one")
        os.kill(int(children[0]), signal.SIGKILL)
        try:
            self.process.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise HostError(
                f"{self.name}: systemd-nspawn still running {SHUTDOWN_TIMEOUT:.0f} s after "
                "its init was killed"
            ) from None

    def shut_down(self) -> None:
        """Power the host off (SIGTERM to our systemd-nspawn), killing it if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ssh_options(key: Path, known_hosts: Path) -> list[str]:
    return [
        "-i",
        str(key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ConnectTimeout=5",
        "-o",
        "LogLevel=ERROR",
    ]


def rootfs_tarball(suite: str, cache: Path, scratch: Path) -> Path:
    """The cached debootstrap of ``suite``, made (and cached) first if it is not there."""
    recipe = f"{RECIPE_VERSION} {suite} {MIRROR} minbase {','.join(PACKAGES)}"
    tarball = cache / f"rootfs-{suite}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}.tar.zst"
    if tarball.exists():
        return tarball
    target = scratch / f"debootstrap-{suite}"
    log = scratch / "logs" / f"debootstrap-{suite}.log"
    with log.open("wb") as output:
        result = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                suite,
                str(target),
                MIRROR,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=900,
        )
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise HostError(f"debootstrap {suite} exited {result.returncode}:\n{tail}")
    partial = tarball.with_suffix(".partial")
    subprocess.run(
        [
            "tar",
            "--zstd",
            "--numeric-owner",
            "--xattrs",
            "-C",
            str(target),
            "-cf",
            str(partial),
            ".",
        ],
        check=True,
        timeout=300,
    )
    partial.rename(tarball)
    shutil.rmtree(target)
    return tarball


def unpack(tarball: Path, root: Path) -> None:
    root.mkdir(parents=True)
    subprocess.run(
        ["tar", "--zstd", "--numeric-owner", "--xattrs", "-C", str(root), "-xf", str(tarball)],
        check=True,
        timeout=300,
    )


def make_key(directory: Path) -> Path:
    """An SSH key pair made for this run only; returns the private key's path."""
    key = directory / "id_ed25519"
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "cqrs-demo-deploy-tests",
            "-f",
            str(key),
        ],
        check=True,
        timeout=30,
    )
    return key


def prepare(host: Host) -> None:
    """Give a fresh root filesystem its name, sshd settings, our key and known_hosts entry."""
    root = host.root
    (root / "etc/hostname").write_text(f"{host.name}\n")
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {host.name}\n")
    # A host on a network of its own listens on every address: its own may come up after sshd.
    listen = "" if host.netns is not None else f"ListenAddress {host.address}\n"
    (root / "etc/ssh/sshd_config.d/cqrs-demo-tests.conf").write_text(
        f"Port {host.ssh_port}\n{listen}"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
    )
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(Path(f"{host.key}.pub").read_text())
    authorized.chmod(0o600)
    # Daily apt runs would take the dpkg lock in the middle of a playbook.
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        mask = root / "etc/systemd/system" / timer
        mask.unlink(missing_ok=True)
        mask.symlink_to("/dev/null")
    host_key = (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    with host.known_hosts.open("a") as known:
        # ssh looks a host up by its bare address on port 22, as [address]:port on others.
        where = host.address if host.ssh_port == 22 else f"[{host.address}]:{host.ssh_port}"
        known.write(f"{where} {host_key[0]} {host_key[1]}\n")
    host.apt_cache.mkdir(parents=True, exist_ok=True)


def quote(*words: str) -> str:
    return " ".join(shlex.quote(word) for word in words)


def cache_dir() -> Path:
    """``$CQRS_TEST_CACHE``, else /var/cache/cqrs-demo-test (made if missing)."""
    path = Path(os.environ.get("CQRS_TEST_CACHE") or "/var/cache/cqrs-demo-test")
    path.mkdir(parents=True, exist_ok=True)
    return path
