"""The appliance under test: Debian 12 and 13 hosts, booted, installed by ansible/site.yml.

Built once per session: root filesystems from the cache (or debootstrap, then cached),
two releases from packaging/build-release (the one installed first, and one to upgrade
to), both hosts booted, then site.yml run against each at once. Everything is removed at
the end but the logs, whose directory is printed; CQRS_TEST_KEEP=1 keeps the hosts' files.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from tests.deploy.hosts import Host, cache_dir, make_key, prepare, rootfs_tarball, unpack
from tests.deploy.playbooks import REPO, PlaybookRun, run_playbooks
from tests.support import require

T = TypeVar("T")

# name -> Debian suite: the distributions the roles support besides Ubuntu 24.04.
HOSTS = {"deb12": "bookworm", "deb13": "trixie"}


@dataclass
class Appliance:
    """The booted hosts, the two releases and what the first site.yml run reported."""

    hosts: dict[str, Host]
    work: Path
    releases: Path
    first_release: str
    next_release: str
    first_run: dict[str, PlaybookRun]
    timings: dict[str, float] = field(default_factory=dict)

    def each(self, action: Callable[[Host], T]) -> dict[str, T]:
        """Do ``action`` on every host at once; return the results by host name."""
        with ThreadPoolExecutor(len(self.hosts)) as pool:
            futures = {name: pool.submit(action, host) for name, host in self.hosts.items()}
            return {name: future.result() for name, future in futures.items()}

    def playbook(
        self,
        playbook: str,
        label: str,
        release: str | None = None,
        *,
        check: bool = False,
        extra: dict[str, object] | None = None,
    ) -> dict[str, PlaybookRun]:
        started = time.monotonic()
        extra_vars: dict[str, object] = {
            "cqrs_demo_release_dir": str(self.releases),
            **(extra or {}),
        }
        if release is not None:
            extra_vars["cqrs_demo_release"] = release
        runs = run_playbooks(
            playbook, list(self.hosts.values()), label=label, extra_vars=extra_vars, check=check
        )
        self.timings[label] = time.monotonic() - started
        return runs


def _require_tools() -> None:
    require(sys.platform == "linux" and os.geteuid() == 0, "root on Linux (systemd-nspawn)")
    for tool in ("debootstrap", "systemd-nspawn", "ssh", "ssh-keygen", "tar", "zstd"):
        require(
            shutil.which(tool) is not None,
            f"the {tool!r} program (packaging/bootstrap installs what is missing)",
        )
    require(
        Path(sys.executable).with_name("ansible-playbook").exists(),
        "ansible-playbook beside the test Python (packaging/bootstrap makes .venv)",
    )


def _build_release(releases: Path, build_id: str) -> str:
    subprocess.run(
        [str(REPO / "packaging/build-release"), "--dist", str(releases), "--build-id", build_id],
        check=True,
        capture_output=True,
        timeout=600,
        env={**os.environ, "CQRS_PYTHON": sys.executable},
    )
    return build_id


@pytest.fixture(scope="session")
def appliance() -> Iterator[Appliance]:
    _require_tools()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="cqrs-demo-deploy-", dir="/var/tmp"))
    logs = work / "logs"
    logs.mkdir()
    cache = cache_dir()
    key = make_key(work)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    with ThreadPoolExecutor(len(HOSTS)) as pool:
        building = {
            name: pool.submit(rootfs_tarball, suite, cache, work) for name, suite in HOSTS.items()
        }
        tarballs = {name: future.result() for name, future in building.items()}
    releases = work / "releases"
    first_release = _build_release(releases, f"deploy-test-{stamp}-1")
    next_release = _build_release(releases, f"deploy-test-{stamp}-2")
    hosts = {
        name: Host(
            name=name,
            suite=suite,
            root=work / name,
            logs=logs,
            key=key,
            known_hosts=work / "known_hosts",
            apt_cache=cache / f"apt-{suite}",
        )
        for name, suite in HOSTS.items()
    }
    appliance = Appliance(hosts, work, releases, first_release, next_release, first_run={})
    appliance.timings["hosts built"] = time.monotonic() - started
    try:
        for name, host in hosts.items():
            unpack(tarballs[name], host.root)
            prepare(host)
        appliance.each(Host.boot)
        appliance.timings["hosts booted"] = time.monotonic() - started
        appliance.first_run = appliance.playbook("site.yml", "1-site", first_release)
        yield appliance
    finally:
        appliance.each(_save_journal)
        appliance.each(Host.shut_down)
        appliance.timings["total"] = time.monotonic() - started
        (logs / "timings.txt").write_text(
            "".join(f"{label}: {seconds:.0f} s\n" for label, seconds in appliance.timings.items())
        )
        if os.environ.get("CQRS_TEST_KEEP") != "1":
            for host in hosts.values():
                shutil.rmtree(host.root, ignore_errors=True)
            shutil.rmtree(releases, ignore_errors=True)
            for path in (key, key.with_suffix(".pub"), work / "known_hosts"):
                path.unlink(missing_ok=True)
        print(f"\ndeploy tests: logs in {logs}", file=sys.stderr)


def _save_journal(host: Host) -> None:
    """Keep the services' and PostgreSQL's journal with the logs (best effort)."""
    if host.process is None or host.process.poll() is not None:
        return
    try:
        journal = host.try_run(
            "journalctl --no-pager -o short-iso -u 'cqrs-demo*' -u 'postgresql*' -u prometheus"
        )
    except (OSError, subprocess.SubprocessError):
        return
    (host.logs / f"journal-{host.name}.log").write_text(journal.stdout + journal.stderr)


@pytest.fixture(params=list(HOSTS))
def host(request: pytest.FixtureRequest, appliance: Appliance) -> Host:
    """Each host in turn, installed by the first site.yml run."""
    name: str = request.param
    run = appliance.first_run[name]
    if not run.succeeded:
        pytest.fail(f"site.yml failed on {name}: {run.summary()}", pytrace=False)
    return appliance.hosts[name]
