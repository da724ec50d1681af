"""One measured run: load one system for a while, then account for CPU, WAL and the audit."""

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.bench.audit import Audit, audit_run
from tests.bench.load import LUA, LoadResult, run_wrk
from tests.bench.postgres import Database, Server
from tests.bench.procs import cpu_used, memory_kib, snapshot
from tests.bench.systems import System


@dataclass(frozen=True, slots=True)
class Run:
    phase: str
    system: str
    load: LoadResult
    audit: Audit
    # CPU seconds: service, postgres, wrk, other, machine (their sum); "service sys" and
    # "postgres sys" the kernel's part of the first two.
    cpu: dict[str, float]
    wal: tuple[int, int, int]  # WAL bytes, full-page images, WAL syncs during the run
    peak_kib: dict[int, int]  # VmHWM per worker pid, after the run
    statement_ms: float | None  # execution time of the system's statements (if measured)
    # With a projector: events it had not applied when the load stopped, and the seconds it
    # took to apply them (counted in the CPU and WAL above, which are its work too).
    projector_behind: tuple[int, float] | None = None

    def per_request(self, amount: float) -> float:
        return amount / max(self.load.responses, 1)

    def _milliseconds(self, name: str) -> str:
        shown = f"{name} {1000 * self.per_request(self.cpu[name]):.2f}"
        if f"{name} sys" in self.cpu:
            shown += f" (sys {1000 * self.per_request(self.cpu[f'{name} sys']):.2f})"
        return shown

    def describe(self) -> str:
        load = self.load
        kinds = ", ".join(
            [f"{count}x{status}" for status, count in sorted(load.statuses.items())]
            + [f"{count} {name}" for name, count in load.socket_errors.items()]
        )
        errors = f"{load.errors} ({kinds})" if kinds else str(load.errors)
        cpu = " ".join(self._milliseconds(name) for name in self.cpu if not name.endswith(" sys"))
        wal_bytes, full_pages, syncs = self.wal
        peak = max(self.peak_kib.values(), default=0) / 1024
        if self.statement_ms is not None:
            peak_line = f"statements {self.per_request(self.statement_ms):.3f} ms/request | "
        else:
            peak_line = ""
        if self.projector_behind is not None:
            behind, seconds = self.projector_behind
            peak_line = (
                f"projector {behind} events behind at the end, {seconds:.1f} s to apply them"
                f" | {peak_line}"
            )
        return (
            f"{self.phase:>8} c={load.connections:<3} {self.system:<5} "
            f"{load.rps:8.1f} rps  p50 {load.p50_ms:7.2f}  p99 {load.p99_ms:7.2f}  "
            f"max {load.max_ms:7.1f} ms  errors {errors}"
            f"\n{'':>14}cpu ms/request: {cpu} | WAL {self.per_request(wal_bytes) / 1024:.2f} "
            f"KiB/request, {self.per_request(full_pages):.2f} FPI/request, "
            f"{self.audit.rows / max(syncs, 1):.1f} commits/WAL sync | "
            f"{peak_line}peak RSS/worker {peak:.1f} MiB\n{'':>14}{self.audit}"
        )


@dataclass(frozen=True, slots=True)
class Workload:
    """What a run sends and how it is audited: the wrk script, its arguments after NONCE
    and ACKS, and the audit, given the nonce, what wrk saw, the database and the highest
    event id before the run."""

    script: Path
    arguments: tuple[str, ...]
    audit: Callable[[str, LoadResult, Database, int], Audit]


def _audit_creates(nonce: str, load: LoadResult, database: Database, high_water: int) -> Audit:
    return audit_run(nonce, load, database.rows_after(high_water))


CREATE = Workload(LUA, (), _audit_creates)


def new_nonce() -> str:
    return f"{int(time.time()):x}{secrets.token_hex(3)}"


def run_once(
    phase: str,
    system: System,
    server: Server,
    database: Database,
    *,
    connections: int,
    seconds: float,
    workdir: Path,
    workload: Workload = CREATE,
) -> Run:
    """Load ``system`` at ``connections`` for ``seconds`` with ``workload`` (new orders
    unless told); audit ``database`` afterwards."""
    nonce = new_nonce()
    high_water = database.high_water_id()
    database.reset_statements()
    wal_before = database.wal()
    groups = {"service": system.pids, "postgres": server.pids}
    cpu_before = snapshot(groups, reaping=[server.postmaster()])
    load = run_wrk(
        system.url + "/",
        connections=connections,
        seconds=seconds,
        nonce=nonce,
        workdir=workdir,
        script=workload.script,
        script_arguments=workload.arguments,
    )
    projector_behind = projector_caught_up(database) if database.projected else None
    cpu_after = snapshot(groups, reaping=[server.postmaster()])
    database.wait_quiet()
    statements = database.statement_milliseconds()
    wal_after = database.wal()
    used = cpu_used(cpu_before, cpu_after)
    cpu = {
        "service": used["service"],
        "postgres": used["postgres"],
        "wrk": load.cpu_seconds,
    }
    cpu["other"] = used["machine"] - sum(cpu.values())  # other processes, interrupts
    cpu["machine"] = used["machine"]
    cpu["service sys"] = used["service sys"]
    cpu["postgres sys"] = used["postgres sys"]
    return Run(
        phase=phase,
        system=system.name,
        load=load,
        audit=workload.audit(nonce, load, database, high_water),
        cpu=cpu,
        wal=(
            wal_after[0] - wal_before[0],
            wal_after[1] - wal_before[1],
            wal_after[2] - wal_before[2],
        ),
        peak_kib={pid: memory_kib(pid).get("VmHWM", 0) for pid in system.workers},
        statement_ms=statements,
        projector_behind=projector_behind,
    )


def projector_caught_up(database: Database, *, timeout: float = 120.0) -> tuple[int, float]:
    """Wait until the projector has applied every event: how many it had not when called,
    and how long that took. Its work for the run's commands is the run's, so the CPU is
    counted until then. Raises if it takes longer than ``timeout``."""
    started = time.monotonic()
    behind = database.projection_lag()
    while database.projection_lag() > 0:
        if time.monotonic() - started > timeout:
            raise RuntimeError(
                f"the projector was {behind} events behind, still behind after {timeout:.0f} s"
            )
        time.sleep(0.05)
    return behind, time.monotonic() - started
