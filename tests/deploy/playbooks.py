"""Running the repository's playbooks against the test hosts, one ansible-playbook per host.

Each host is a whole appliance (database and API on one machine), so each gets its own
inventory, like an operator's single-host inventory, and its own ansible-playbook process;
the processes run side by side. The output of every run is kept in the logs directory.
"""

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.hosts import Host, ssh_options

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / "ansible"
PLAYBOOK_TIMEOUT = 1200.0

_RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


@dataclass(frozen=True)
class PlaybookRun:
    """One ansible-playbook run against one host: its exit status, recap and output."""

    host: str
    returncode: int
    ok: int
    changed: int
    unreachable: int
    failed: int
    log: Path
    seconds: float

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def summary(self) -> str:
        """The end of the output, for assertion messages."""
        return f"{self.log} (exit {self.returncode}):\n" + self.output()[-6000:]

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and self.failed == 0 and self.unreachable == 0


def write_inventory(host: Host, directory: Path) -> Path:
    """A single-host inventory: ``host`` in both groups, reached over SSH as root."""
    inventory = {
        "all": {
            "hosts": {
                host.name: {
                    "ansible_host": "127.0.0.1",
                    "ansible_port": host.ssh_port,
                    "ansible_user": "root",
                    "ansible_ssh_private_key_file": str(host.key),
                    "ansible_ssh_common_args": " ".join(ssh_options(host.key, host.known_hosts)),
                    # The test hosts have no sudo; root becomes postgres with su.
                    "ansible_become_method": "su",
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "cqrs_postgresql_port": host.postgresql_port,
                    "cqrs_demo_port": host.http_port,
                    "cqrs_demo_metrics_port": host.metrics_port,
                    "cqrs_demo_projector_metrics_port": host.projector_metrics_port,
                    "cqrs_prometheus_listen_address": f"127.0.0.1:{host.prometheus_port}",
                    # The hosts see all of this machine's memory; two of them share it.
                    "cqrs_postgresql_shared_buffers": "128MB",
                    "cqrs_postgresql_effective_cache_size": "1GB",
                }
            },
            "children": {
                "cqrs_db": {"hosts": {host.name: None}},
                "cqrs_api": {"hosts": {host.name: None}},
            },
        }
    }
    path = directory / f"inventory-{host.name}.yml"
    path.write_text(json.dumps(inventory, indent=2))
    return path


def run_playbooks(
    playbook: str,
    hosts: list[Host],
    *,
    label: str,
    extra_vars: Mapping[str, object] | None = None,
    check: bool = False,
    timeout: float = PLAYBOOK_TIMEOUT,
) -> dict[str, PlaybookRun]:
    """Run ``ansible/<playbook>`` against every host at once; wait for all of them."""
    started = time.monotonic()
    running = []
    for host in hosts:
        log = host.logs / f"{label}-{host.name}.log"
        command = [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "--inventory",
            str(write_inventory(host, host.logs)),
            str(ANSIBLE / playbook),
            *(["--check", "--diff"] if check else []),
        ]
        if extra_vars:
            command += ["--extra-vars", json.dumps(dict(extra_vars))]
        with log.open("wb") as output:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=_ansible_environment(host),
                start_new_session=True,
            )
        running.append((host, process, log))
    return {
        host.name: _finish(host, process, log, started + timeout, started)
        for host, process, log in running
    }


def _finish(
    host: Host, process: subprocess.Popen[bytes], log: Path, deadline: float, started: float
) -> PlaybookRun:
    try:
        returncode = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        returncode = process.wait(timeout=30)
    seconds = time.monotonic() - started
    counts = {"ok": 0, "changed": 0, "unreachable": 0, "failed": 0}
    for match in _RECAP.finditer(log.read_text(errors="replace")):
        if match["host"] == host.name:
            counts = {name: int(match[name]) for name in counts}
    if not any(counts.values()):
        counts["failed"] = 1  # no recap at all: the run died before its end
    return PlaybookRun(host.name, returncode, log=log, seconds=seconds, **counts)


def _ansible_environment(host: Host) -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_LOCAL_TEMP": str(host.logs / "ansible-tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(host.logs / "ansible-cp"),
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }
