"""The systems under load: our service, started as its systemd unit starts it, and the peer.

Each runs on a free port on 127.0.0.1 against the benchmark's database. Each is stopped by
the pid the benchmark started (and, for our service, the worker pids it found); nothing
else is signalled.
"""

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from cqrs_demo.localdb import free_port
from tests.bench import floor_projector
from tests.bench.postgres import REPO
from tests.bench.procs import children, command_line

CQRS_DEMO = str(Path(sys.executable).with_name("cqrs-demo"))
START_SECONDS = 60.0
STOP_SECONDS = 40.0
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")


class System:
    """A started HTTP service: its name, base URL, and the processes that make it up."""

    def __init__(self, name: str, process: "subprocess.Popen[bytes]", url: str, log: Path) -> None:
        self.name = name
        self.process = process
        self.url = url
        self.log = log
        self.workers: list[int] = [process.pid]

    def pids(self) -> list[int]:
        """Every process whose CPU time counts as this system's."""
        return sorted({self.process.pid, *self.workers})

    def stop(self) -> None:
        """SIGTERM to the started process; SIGKILL to it and its workers after a grace time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            for pid in {self.process.pid, *self.workers}:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait(10)

    def wait_ready(self, path: str, *, ready_statuses: tuple[int, ...] | None) -> None:
        """Poll ``path`` until it answers with one of ``ready_statuses`` (``None``: with any
        status); raise if the process exits or START_SECONDS pass."""
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.tail()}")
            status = _status(self.url + path)
            if status is not None and (ready_statuses is None or status in ready_statuses):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {START_SECONDS:.0f} s:\n{self.tail()}")

    def tail(self, limit: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-limit:]


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def service_environment(tree: Path | None) -> dict[str, str]:
    """This process's environment for ``cqrs-demo``, its code taken from ``tree`` if given."""
    environ = dict(os.environ)
    environ.pop("PYTHONPATH", None)
    if tree is not None:
        environ["PYTHONPATH"] = str(tree / "service")
    return environ


def migrate(database_url: str, tree: Path | None) -> str:
    """``cqrs-demo migrate``; returns what it printed."""
    result = subprocess.run(
        [CQRS_DEMO, "migrate"],
        env={**service_environment(tree), "CQRS_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"cqrs-demo migrate failed: {result.stderr.strip()}")
    return result.stdout.strip()


def start_service(
    name: str,
    database_url: str,
    workdir: Path,
    tree: Path | None,
    settings: Mapping[str, str] | None = None,
) -> System:
    """``cqrs-demo serve`` as the unit runs it: the CQRS_* defaults (and any CQRS_* variable
    set for the benchmark, then ``settings``), stderr to a log whose device:inode is in
    JOURNAL_STREAM, as under systemd, so the log lines take the journal's format."""
    port = free_port()
    log = workdir / f"{name}.log"
    environ = {
        **service_environment(tree),
        **(settings or {}),
        "CQRS_DATABASE_URL": database_url,
        "CQRS_HOST": "127.0.0.1",
        "CQRS_PORT": str(port),
    }
    with log.open("wb") as output:
        stat = os.fstat(output.fileno())
        environ["JOURNAL_STREAM"] = f"{stat.st_dev}:{stat.st_ino}"
        process = subprocess.Popen(
            [CQRS_DEMO, "serve"], env=environ, stdout=output, stderr=subprocess.STDOUT
        )
    system = System(name, process, f"http://127.0.0.1:{port}", log)
    try:
        system.wait_ready("/readyz", ready_statuses=(200,))
        system.workers = [
            pid
            for pid in children(process.pid)
            if "spawn_main" in command_line(pid) and "resource_tracker" not in command_line(pid)
        ]
    except BaseException:
        system.stop()
        raise
    return system


# What --projector runs beside the service: the projector as its unit runs it, or the floor
# (tests/bench/floor_projector.py) with the rows or passing over them.
PROJECTORS = ("project", "floor", "floor-pass-over")


def start_projector(
    database_url: str,
    workdir: Path,
    tree: Path | None,
    name: str = "projector",
    kind: str = "project",
) -> System:
    """The projector of ``kind`` (``PROJECTORS``): ``cqrs-demo project`` as its unit runs it
    (the CQRS_* defaults), ready once it holds the lock of every projection (its log says
    so), or the floor projector, ready once it says so; logging as under systemd to
    ``workdir/NAME.log``."""
    log = workdir / f"{name}.log"
    environ = {**service_environment(tree), "CQRS_DATABASE_URL": database_url}
    if kind == "project":
        command, ready, count = [CQRS_DEMO, "project"], "took the lock", 2
    else:
        mode = "rows" if kind == "floor" else kind.removeprefix("floor-")
        command = [sys.executable, "-m", "tests.bench.floor_projector", mode]
        ready, count = floor_projector.READY, 1
        environ["PYTHONPATH"] = os.pathsep.join(
            [str(REPO), *([environ["PYTHONPATH"]] if tree is not None else [])]
        )
    with log.open("wb") as output:
        stat = os.fstat(output.fileno())
        environ["JOURNAL_STREAM"] = f"{stat.st_dev}:{stat.st_ino}"
        process = subprocess.Popen(command, env=environ, stdout=output, stderr=subprocess.STDOUT)
    system = System(name, process, "", log)
    deadline = time.monotonic() + START_SECONDS
    try:
        while system.tail(100_000).count(ready) < count:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the projector did not start:\n{system.tail()}")
            time.sleep(0.1)
    except BaseException:
        system.stop()
        raise
    return system


def start_peer(command: str, dsn: str, workdir: Path) -> System:
    """The peer from ``command`` (leading NAME=VALUE words go to its environment), with
    ``DSN`` and ``ADDR`` set; ready once it answers HTTP at all."""
    words = shlex.split(command)
    assignments = {}
    while words and _ASSIGNMENT.fullmatch(words[0]):
        name, _, value = words.pop(0).partition("=")
        assignments[name] = value
    if not words:
        raise ValueError(f"the peer command names no program: {command!r}")
    port = free_port()
    log = workdir / "peer.log"
    environ = {**os.environ, **assignments, "DSN": dsn, "ADDR": f"127.0.0.1:{port}"}
    with log.open("wb") as output:
        process = subprocess.Popen(words, env=environ, stdout=output, stderr=subprocess.STDOUT)
    system = System("peer", process, f"http://127.0.0.1:{port}", log)
    try:
        # A GET of the command's path: the seed's peer answers 405, Emmett's 404.
        system.wait_ready("/api/commands/order/create", ready_statuses=None)
    except BaseException:
        system.stop()
        raise
    return system
