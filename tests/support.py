"""Helpers shared by the test layers: what a test needs, a running service, a database."""

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from cqrs_demo.localdb import LocalPostgres, free_port
from tests.bench.procs import children

IN_CI = os.environ.get("CI", "").lower() == "true"
REPO = Path(__file__).resolve().parent.parent
CQRS_DEMO = str(Path(sys.executable).with_name("cqrs-demo"))


def require(condition: bool, what: str) -> None:
    """Skip (outside CI) or fail (in CI) a test whose environment lacks ``what``."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and this test needs {what}", pytrace=False)
    pytest.skip(f"needs {what}")


def require_binary(name: str) -> None:
    require(shutil.which(name) is not None, f"the {name!r} program on PATH")


@contextmanager
def frozen(postgres: LocalPostgres) -> Iterator[None]:
    """``postgres`` answering nothing (a hung host): every process of the server stopped
    (SIGSTOP) for the block, continued (SIGCONT) after it."""
    postmaster = int((postgres.datadir / "postmaster.pid").read_text().split()[0])
    processes = [postmaster, *children(postmaster)]
    _signal_each(processes, signal.SIGSTOP)
    try:
        yield
    finally:
        _signal_each(processes, signal.SIGCONT)


def _signal_each(pids: list[int], signum: signal.Signals) -> None:
    """``signum`` to each of ``pids`` that is still there (a backend may have ended)."""
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signum)


def new_database(postgres: LocalPostgres, name: str) -> str:
    """Create database ``name``, migrate it, and return its URL."""
    postgres.create_database(name)
    url = postgres.url(name)
    subprocess.run(
        [CQRS_DEMO, "migrate"],
        env={**os.environ, "CQRS_DATABASE_URL": url},
        check=True,
        capture_output=True,
        timeout=60,
    )
    return url


@dataclass(frozen=True)
class Replicated:
    """A private primary with a migrated ``cqrs_events`` database and a hot standby
    streaming from it, each on a port of its own."""

    primary: LocalPostgres
    standby: LocalPostgres

    def url(self, *servers: LocalPostgres | int, role: str = "read-write") -> str:
        """A libpq URL of ``cqrs_events`` naming ``servers`` in order (a port: a server
        that is not there), with ``target_session_attrs=role``."""
        hosts = ",".join(
            f"127.0.0.1:{server if isinstance(server, int) else server.port}" for server in servers
        )
        return f"postgresql://postgres@{hosts}/cqrs_events?target_session_attrs={role}"

    def replayed(self, timeout: float = 10.0) -> None:
        """Wait until the standby has replayed all the WAL the primary has written so far."""
        written = self.primary.psql("postgres", "SELECT pg_current_wal_lsn()").strip()
        deadline = time.monotonic() + timeout
        caught_up = f"SELECT pg_last_wal_replay_lsn() >= '{written}'::pg_lsn"
        while self.standby.psql("postgres", caught_up).strip() != "t":
            if time.monotonic() > deadline:
                raise AssertionError(f"the standby has not replayed up to {written} in {timeout} s")
            time.sleep(0.05)


@contextmanager
def replicated() -> Iterator[Replicated]:
    """Start a primary, migrate ``cqrs_events`` on it, start a standby of it (from a base
    backup: it has the schema); stop and remove both afterwards."""
    with LocalPostgres() as primary:
        new_database(primary, "cqrs_events")
        standby = LocalPostgres(standby_of=primary)
        try:
            standby.start()
            yield Replicated(primary, standby)
        finally:
            standby.stop()


def events_table_state(database_url: str) -> tuple[int, int]:
    """How many events there are, and the highest id: an insert changes both, so equal
    before and after means nothing was written, whoever's stream it would have been."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*), coalesce(max(id), 0) FROM events").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


class Service:
    """A ``cqrs-demo serve`` process over HTTP, with its log captured to a file."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str) -> re.Match[str]:
        """``wait_for_match`` on the service's log."""
        return wait_for_match(self.log, pattern)

    def client(self, **options: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **options)  # type: ignore[arg-type]

    def children(self) -> list[int]:
        """The pids of the main process's children (workers, multiprocessing helpers)."""
        listing = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)],
            capture_output=True,
            text=True,
            check=True,
        )
        return [int(pid) for pid in listing.stdout.split()]

    def worker_pids(self) -> list[int]:
        """The pids of the worker processes (spawned by multiprocessing)."""
        return [
            pid
            for pid in self.children()
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
        ]

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@contextmanager
def running_service(
    database_url: str,
    tmp_path: Path,
    *,
    wait_ready: bool = True,
    open_files: int | None = None,
    **settings: str,
) -> Iterator[Service]:
    """Start ``cqrs-demo serve`` on a free port (with an open-file limit of ``open_files``,
    soft and hard, if given); stop it (SIGTERM) afterwards."""
    port = free_port()
    environ: Mapping[str, str] = {
        **os.environ,
        "CQRS_DATABASE_URL": database_url,
        "CQRS_PORT": str(port),
        "CQRS_WORKERS": "2",
        "CQRS_LOG_LEVEL": "info",
        **settings,
    }
    log = tmp_path / f"service-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [CQRS_DEMO, "serve"],
            env=environ,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=None if open_files is None else partial(_limit_open_files, open_files),
        )
    service = Service(process, f"http://127.0.0.1:{port}", log)
    try:
        if wait_ready:
            wait_until_ready(service)
        yield service
    finally:
        try:
            service.stop()
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _limit_open_files(count: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


def wait_for_match(
    read: Callable[[], str], pattern: str, *, timeout: float = 10.0
) -> re.Match[str]:
    """Read (a log, a journal) until the regular expression ``pattern`` matches in it
    (``re.MULTILINE``); return the match. A request's log line is written just after its
    answer, so a read right after the answer may not hold it yet: this retries every 0.1 s
    for ``timeout`` seconds, then raises AssertionError showing the end of the text."""
    deadline = time.monotonic() + timeout
    while True:
        text = read()
        match = re.search(pattern, text, re.MULTILINE)
        if match is not None:
            return match
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not found within {timeout} s in:\n{text[-3000:]}")
        time.sleep(0.1)


def wait_until_ready(service: Service, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise AssertionError(
                f"service exited with {service.process.returncode}:\n{service.log()}"
            )
        try:
            ready = httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200
            if ready and "serving on http" in service.log():  # every worker is up
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"service not ready after {timeout} s:\n{service.log()}")


def raw_exchange(url: str, request: bytes, timeout: float = 10) -> tuple[bytes, float]:
    """Send raw bytes to the service; return the whole answer (head and body) and how many
    seconds it took to begin. For requests that httpx will not send (partial bodies)."""
    address = urlsplit(url)
    assert address.hostname is not None
    assert address.port is not None
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as conn:
        conn.sendall(request)
        started = time.monotonic()
        answer = conn.recv(65536)
        waited = time.monotonic() - started
        head, _, body = answer.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^content-length: *(\d+)", head)[1])  # type: ignore[index]
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
    return head + b"\r\n\r\n" + body, waited


class Scrape:
    """One scrape of a Prometheus endpoint, parsed by prometheus_client's own parser."""

    def __init__(self, url: str) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        answer = httpx.get(url, timeout=10)
        assert answer.status_code == 200, answer.text
        self.text = answer.text
        self.samples = [
            sample
            for family in text_string_to_metric_families(self.text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels`` (0 if none)."""
        return sum(
            sample.value
            for sample in self.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def labels(self, name: str, label: str) -> set[str]:
        """Every value of ``label`` among the samples named ``name``."""
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}
