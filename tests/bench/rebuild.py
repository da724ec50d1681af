"""``--rebuild``: how fast ``cqrs-demo projections rebuild`` rebuilds each projection from a
history of a given size, against the same read models computed by SQL alone.

For each size, a database of its own gets the history of ``read_history`` (inserted with
SQL), then each projection is rebuilt by the command an operator runs, as a process of its
own: its wall time, its CPU and PostgreSQL's, and its progress lines (one every 5 s, each
stamped when read) for the events/s over time. Then the read models are computed again by
one ``INSERT ... SELECT`` per table (``read_history.sql_read_models``), and every row of the
rebuilt tables must equal them: a rebuild that differs fails the run.
"""

import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.postgres import Server
from tests.bench.procs import cpu_used, snapshot
from tests.bench.read_history import History, differences, insert_history, sql_read_models
from tests.bench.systems import CQRS_DEMO, migrate, service_environment

PROJECTIONS = {
    "orders": ("orders",),
    "user_order_summaries": ("user_order_summaries", "user_order_summary_open_orders"),
}
_PROGRESS = re.compile(r"rebuilding \S+: ([\d,]+) of ([\d,]+) events")
_DONE = re.compile(r"swapped in: .* ([\d]+) events applied, in ([\d.]+) s")


@dataclass
class Rebuilt:
    """One projection's rebuild: events, seconds (as the command reports them: from its
    first batch to its swap), its process's CPU and PostgreSQL's, and its progress."""

    projection: str
    events: int
    seconds: float
    wall_seconds: float
    cpu: dict[str, float]
    progress: list[tuple[float, int]] = field(default_factory=list)  # (seconds, events)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def describe(self) -> str:
        return (
            f"rebuild {self.projection}: {self.events:,} events in {self.seconds:.1f} s "
            f"({self.wall_seconds:.1f} s with start and swap): {self.rate:,.0f} events/s; "
            f"CPU {self.cpu['rebuild']:.1f} s rebuild, {self.cpu['postgres']:.1f} s PostgreSQL, "
            f"{self.cpu['machine'] - self.cpu['rebuild'] - self.cpu['postgres']:.1f} s other"
        )


@dataclass
class SizeResult:
    """Everything measured at one size."""

    history: History
    rebuilds: list[Rebuilt]
    sql_seconds: float
    differing_rows: dict[str, int]
    load: tuple[tuple[float, ...], tuple[float, ...]]  # load averages before, after

    @property
    def ok(self) -> bool:
        return not any(self.differing_rows.values())

    @property
    def sql_rate(self) -> float:
        return self.history.events / self.sql_seconds


def measure_size(
    server: Server, size: int, tree: Path | None, batch_size: int | None
) -> SizeResult:
    """Insert a history of ``size`` events into a new database, rebuild each projection,
    compute the SQL reference, compare."""
    load_before = os.getloadavg()
    database = server.create_database(f"cqrs_rebuild_{size}")
    try:
        migrate(database.url, tree)
        history = insert_history(database.url, size)
        database.preloaded_rows = history.events
        print(f"rebuild {size:,}: {history}", flush=True)
        rebuilds = []
        for projection in PROJECTIONS:
            rebuilt = rebuild(server, database.url, projection, tree, batch_size)
            print(rebuilt.describe(), flush=True)
            rebuilds.append(rebuilt)
        sql_seconds = sql_read_models(database.url)
        tables = tuple(table for tables in PROJECTIONS.values() for table in tables)
        differing = differences(database.url, tables)
    finally:
        database.close()
    result = SizeResult(history, rebuilds, sql_seconds, differing, (load_before, os.getloadavg()))
    print(
        f"the same read models by SQL alone (one INSERT ... SELECT per table, tables without "
        f"indexes): {sql_seconds:.1f} s, {result.sql_rate:,.0f} events/s; rows differing "
        f"from the rebuilt tables: {differing}",
        flush=True,
    )
    return result


def rebuild(
    server: Server, url: str, projection: str, tree: Path | None, batch_size: int | None
) -> Rebuilt:
    """``cqrs-demo projections rebuild PROJECTION`` as an operator runs it; raises if it
    fails."""
    command = [CQRS_DEMO, "projections", "rebuild", projection, "--afresh"]
    if batch_size:
        command += ["--batch-size", str(batch_size)]
    environ = {**service_environment(tree), "CQRS_DATABASE_URL": url}
    time.sleep(1.5)  # the backends of the steps before end, and are reaped, before it starts
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    groups = {"postgres": server.pids}
    reaping = [server.postmaster()]  # the rebuild's backends count once reaped
    before = snapshot(groups, reaping=reaping)
    progress: list[tuple[float, int]] = [(0.0, 0)]
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        found = _PROGRESS.search(line)
        if found:
            progress.append((time.monotonic() - started, int(found[1].replace(",", ""))))
    out = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    time.sleep(0.2)  # for the postmaster to reap the rebuild's backends
    cpu = cpu_used(before, snapshot(groups, reaping=reaping))
    cpu["rebuild"] = usage.ru_utime + usage.ru_stime
    done = _DONE.search(out)
    if process.returncode != 0 or done is None:
        raise RuntimeError(f"rebuild {projection} failed ({process.returncode}): {out}{lines}")
    events, seconds = int(done[1]), float(done[2])
    progress.append((wall, events))
    return Rebuilt(projection, events, seconds, wall, cpu, progress)
