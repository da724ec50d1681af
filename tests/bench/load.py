"""Driving HTTP load with wrk and a load script (create_order.lua unless told), and reading
what it saw."""

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cqrs_demo.localdb import find_bindir

LUA = Path(__file__).with_name("create_order.lua")
WRK_TIMEOUT = "5s"  # a response slower than this counts as an error (wrk's default is 2 s)


@dataclass(frozen=True, slots=True)
class Ack:
    """One 202 as the load generator read it: the stream and version its body named
    (``None`` when the body names neither, as the peer's does not)."""

    aggregate_id: str | None
    version: int | None


@dataclass(frozen=True, slots=True)
class LoadResult:
    connections: int
    seconds: float
    responses: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    sent: dict[int, int]  # requests written, per wrk thread
    acks: list[Ack]
    statuses: dict[int, int]  # responses other than 202, per status
    socket_errors: dict[str, int]
    cpu_seconds: float  # wrk's own user + system time

    @property
    def rps(self) -> float:
        return self.responses / self.seconds

    @property
    def errors(self) -> int:
        return sum(self.statuses.values()) + sum(self.socket_errors.values())


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: packaging/bootstrap installs it (apt wrk)")
    return wrk


def wrk_threads(connections: int) -> int:
    """wrk's threads for ``connections``: two, one for one connection."""
    return min(2, connections)


def run_wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    nonce: str,
    workdir: Path,
    script: Path = LUA,
    script_arguments: tuple[str, ...] = (),
) -> LoadResult:
    """``wrk`` for ``seconds`` over ``connections`` (two threads, one for one connection),
    running ``script`` with the arguments NONCE ACKS and then ``script_arguments``."""
    acks_prefix = workdir / f"acks-{nonce}"
    threads = wrk_threads(connections)
    command = [
        require_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        WRK_TIMEOUT,
        "-s",
        str(script),
        url,
        "--",
        nonce,
        str(acks_prefix),
        *script_arguments,
    ]
    output_path = workdir / f"wrk-{nonce}.out"
    with output_path.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    cpu = _wait_with_rusage(process, deadline=time.monotonic() + seconds + 60)
    text = output_path.read_text(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {text[-2000:]}")
    return parse_wrk_output(text, acks_prefix, connections, cpu)


def _wait_with_rusage(process: "subprocess.Popen[bytes]", *, deadline: float) -> float:
    """Reap ``process`` (SIGKILL at ``deadline``) and return its user + system CPU seconds."""
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            os.kill(process.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
        time.sleep(0.05)


def _fields(line: str) -> dict[str, int]:
    return {key: int(value) for key, _, value in (word.partition("=") for word in line.split()[1:])}


def parse_wrk_output(text: str, acks_prefix: Path, connections: int, cpu: float) -> LoadResult:
    """What wrk with create_order.lua printed (and wrote to ``acks_prefix``.N), read."""
    result: dict[str, int] = {}
    sent: dict[int, int] = {}
    statuses: dict[int, int] = {}
    for line in text.splitlines():
        if line.startswith("RESULT "):
            result = _fields(line)
        elif line.startswith("THREAD "):
            fields = _fields(line)
            sent[fields["tid"]] = fields["sent"]
        elif line.startswith("STATUS "):
            fields = _fields(line)
            statuses[fields["code"]] = statuses.get(fields["code"], 0) + fields["count"]
    if not result:
        raise RuntimeError(f"wrk printed no RESULT line:\n{text[-2000:]}")
    acks = [
        _ack(line)
        for tid in sorted(sent)
        for line in Path(f"{acks_prefix}.{tid}").read_text().splitlines()
    ]
    return LoadResult(
        connections=connections,
        seconds=result["duration_us"] / 1e6,
        responses=result["requests"],
        p50_ms=result["p50_us"] / 1000,
        p90_ms=result["p90_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        p999_ms=result["p999_us"] / 1000,
        max_ms=result["max_us"] / 1000,
        sent=sent,
        acks=acks,
        statuses=statuses,
        socket_errors={
            name: result[name] for name in ("connect", "read", "write", "timeout") if result[name]
        },
        cpu_seconds=cpu,
    )


def _ack(line: str) -> Ack:
    aggregate_id, _, version = line.partition(" ")
    return Ack(
        aggregate_id=None if aggregate_id == "-" else aggregate_id,
        version=int(version) if version.isdigit() else None,
    )


PGBENCH_SQL = Path(__file__).with_name("pgbench_insert.sql")


def run_pgbench(dsn: str, *, clients: int, seconds: float) -> float:
    """Transactions per second of ``pgbench_insert.sql`` (one durable insert each)."""
    pgbench = str(find_bindir() / "pgbench")  # the server's own version
    command = [pgbench, "-n", "-M", "prepared", "-c", str(clients), "-j", "2"]
    command += ["-T", str(int(seconds)), "-f", str(PGBENCH_SQL), dsn]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    for line in result.stdout.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    raise RuntimeError(f"pgbench failed ({result.returncode}): {result.stderr[-2000:]}")
