"""The throughput benchmark: our service against the seed's Go peer, at production durability.

Run it with ``tests/bench/run --help``. It starts a private PostgreSQL, migrates it, starts
``cqrs-demo serve`` as the systemd unit does (and the peer, if given, on the same database),
loads each with wrk at each level, alternating the systems, audits the table after every
run, and prints the figures, the ratios, the CPU spent per request and peak memory per
worker. ``--growth`` measures appends with the table pre-filled; ``--profile`` samples
where the time goes; ``--cancel`` measures cancels against streams of given lengths. Only
127.0.0.1 is used; only the processes it started are stopped.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

from tests.bench import profiling, report
from tests.bench.cancel import CancelTargets, cancels_per_stream
from tests.bench.freshness import measure as measure_freshness
from tests.bench.freshness import merge as merge_freshness
from tests.bench.growth import load_events
from tests.bench.load import run_pgbench
from tests.bench.options import parse_arguments
from tests.bench.postgres import PROFILING, Database, Server, production_settings
from tests.bench.procs import memory_kib
from tests.bench.queries import ENDPOINTS, pgbench_script, run_pgbench_select
from tests.bench.queries import workload as query_workload
from tests.bench.read_history import STEPS, insert_history
from tests.bench.rebuild import PROJECTIONS, measure_size
from tests.bench.rebuild import rebuild as rebuild_projection
from tests.bench.runs import CREATE, Run, Workload, projector_caught_up, run_once
from tests.bench.systems import System, migrate, start_peer, start_projector, start_service
from tests.bench.trees import describe_tree, export_commit


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    keep = arguments.results is not None
    workdir = arguments.results or Path(tempfile.mkdtemp(prefix="cqrs-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    arguments.tree = arguments.tree or export_commit(arguments.commit, workdir / "tree")
    arguments.compare_tree = arguments.compare_tree or export_commit(
        arguments.compare_commit, workdir / "compare-tree"
    )
    profiled = arguments.profile or arguments.growth
    settings = production_settings() | (PROFILING if profiled else {})
    print_header(arguments, settings)
    server = Server(settings)
    systems: list[System] = []
    companions: list[System] = []  # started beside the systems, not loaded: the projector
    databases: list[Database] = []
    try:
        target = start_systems(arguments, server, systems, databases, workdir, companions)
        bench = Bench(arguments, server, systems, target, workdir)
        measure(bench)
        runs = bench.runs
        print_memory(systems)
        audits_ok = all(run.audit.ok for run in runs) and not bench.failures
        for failure in bench.failures:
            print(f"FAILED: {failure}")
        total_ok = check_totals(runs, databases, arguments)
        total_ok = check_read_models(target) and total_ok
        (workdir / "runs.json").write_text(json.dumps([asdict(run) for run in runs], default=str))
        return 0 if audits_ok and total_ok else 1
    finally:
        for system in [*reversed(systems), *companions]:
            system.stop()
        for database in databases:
            database.close()
        server.stop()
        if keep:
            print(f"results kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Bench:
    """What the runs share: the options, the server, the systems and their databases."""

    arguments: argparse.Namespace
    server: Server
    systems: list[System]
    target: dict[str, Database]  # the database each system writes to
    workdir: Path
    runs: list[Run] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # of measurements without a Run

    @property
    def names(self) -> list[str]:
        return [system.name for system in self.systems]

    def run(
        self,
        phase: str,
        system: System,
        connections: int,
        seconds: float,
        workload: Workload = CREATE,
    ) -> Run:
        done = run_once(
            phase,
            system,
            self.server,
            self.target[system.name],
            connections=connections,
            seconds=seconds,
            workdir=self.workdir,
            workload=workload,
        )
        print(done.describe(), flush=True)
        self.runs.append(done)
        return done

    def warm_up(self, phase: str, connections: int) -> None:
        if self.arguments.warmup > 0:
            for system in self.systems:
                self.run(phase, system, connections, self.arguments.warmup)

    def alternate(self, phase: str, levels: list[int]) -> None:
        """Each level: the systems in turn, ``--rounds`` times."""
        for level in levels:
            for _ in range(self.arguments.rounds):
                for system in self.systems:
                    self.run(phase, system, level, self.arguments.duration)


def start_systems(
    arguments: argparse.Namespace,
    server: Server,
    systems: list[System],
    databases: list[Database],
    workdir: Path,
    companions: list[System],
) -> dict[str, Database]:
    """Migrate and start ours (and 'other', and the peer, if asked; and our projector,
    in ``companions``): appended to ``systems`` and ``databases`` as they start, so that
    the caller stops what started. Returns the database of each system."""
    main_database = server.create_database("cqrs_events")
    databases.append(main_database)
    main_database.statements = arguments.profile or arguments.growth
    print(f"migrate: {migrate(main_database.url, arguments.tree)}".replace("\n", "; "))
    if arguments.rebuild:
        return {"ours": main_database}  # each size has a database of its own, no service
    ours = start_service("ours", main_database.url, workdir, arguments.tree)
    systems.append(ours)
    if arguments.projector or arguments.freshness:
        kind = arguments.projector or "project"
        companions.append(beside(ours, main_database, workdir, arguments.tree, kind))
    target = {"ours": main_database}
    if arguments.compare_tree:
        other_database = server.create_database("cqrs_events_other")
        databases.append(other_database)
        migrate(other_database.url, arguments.compare_tree)
        settings = dict(assignment.split("=", 1) for assignment in arguments.compare_env)
        if settings:
            print(f"'other' also gets: {settings}")
        other = start_service(
            "other", other_database.url, workdir, arguments.compare_tree, settings
        )
        systems.append(other)
        if arguments.projector:  # each system with a projector of its own tree
            kind = arguments.compare_projector
            companions.append(beside(other, other_database, workdir, arguments.compare_tree, kind))
        target["other"] = other_database
    if arguments.queries:
        history = insert_history(main_database.url, arguments.query_events[0])
        main_database.preloaded_rows += history.events
        print(f"queries: {history}", flush=True)
        for projection in PROJECTIONS:
            print(
                rebuild_projection(
                    server, main_database.url, projection, arguments.tree, None
                ).describe()
            )
    if arguments.peer and not (
        arguments.profile or arguments.cancel or arguments.queries or arguments.freshness
    ):
        peer_database = main_database
        if main_database.projected:
            # Our projector reads every event of its database: the peer's (and the
            # ceiling's rows) go to a database of their own, so that the projector's work
            # during a run is all for our commands, and none is done during the peer's.
            peer_database = server.create_database("cqrs_events_peer")
            databases.append(peer_database)
            migrate(peer_database.url, arguments.tree)
        systems.append(start_peer(arguments.peer, peer_database.dsn, workdir))
        target["peer"] = peer_database.for_peer()
        databases.append(target["peer"])
    return target


def beside(
    system: System, database: Database, workdir: Path, tree: Path | None, kind: str
) -> System:
    """The projector of ``kind`` started beside ``system`` on its ``database`` (its CPU
    counted as the system's); the database marked as projected, and as holding rows unless
    the projector only passes over the events."""
    name = "projector" if system.name == "ours" else f"{system.name}-projector"
    projector = start_projector(database.url, workdir, tree, name, kind)
    system.workers.append(projector.process.pid)
    database.projected = True
    database.rows_projected = kind != "floor-pass-over"
    return projector


def measure(bench: Bench) -> None:
    arguments = bench.arguments
    if arguments.rebuild:
        rebuild(bench)
        return
    if arguments.queries:
        queries(bench)
        return
    if arguments.freshness:
        freshness(bench)
        return
    levels = arguments.cancel_levels if arguments.cancel else arguments.levels
    bench.warm_up("warmup", max(levels))
    if arguments.profile:
        profile(bench)
    elif arguments.growth:
        growth(bench)
    elif arguments.cancel:
        cancel(bench)
    else:
        ceiling(arguments, _unprojected(bench.target))
        bench.alternate("baseline", arguments.levels)
        print(f"\nbaseline: mean of {arguments.rounds} alternating runs per system and level\n")
        print(report.comparison(bench.runs, bench.names, "baseline"))
        if arguments.pictures:
            drawn = report.create_charts(bench.runs, bench.names, "baseline", arguments.pictures)
            print(f"drawn: {drawn}")


def growth(bench: Bench) -> None:
    """At each size: load up to it, warm up (caches, the first writes after the
    checkpoint), then the alternating runs."""
    database = bench.target["ours"]
    phases = []
    loaded = 0
    for size in bench.arguments.sizes:
        phase = _size_name(size)
        phases.append(phase)
        if size > loaded:
            timing = load_events(database.url, loaded, size - loaded)
            loaded = size
            print(f"{phase}: {timing}; table: {database.sizes()}", flush=True)
            bench.warm_up(f"warm {phase}", max(bench.arguments.growth_levels))
        bench.alternate(phase, bench.arguments.growth_levels)
    print("\ngrowth: mean per size, and its ratio to the first size\n")
    print(report.growth(bench.runs, bench.names, phases))


def cancel(bench: Bench) -> None:
    """Per level: a warm-up at each stream length (it also measures the rate the targets
    are prepared for), then ``--rounds`` rounds of new orders and of cancels at each length."""
    arguments, ours = bench.arguments, bench.systems[0]
    lengths = arguments.stream_lengths
    for level in arguments.cancel_levels:
        targets = [
            CancelTargets(bench.target["ours"], length, level, bench.workdir) for length in lengths
        ]
        if arguments.warmup > 0:
            for mine in targets:
                run_cancels(bench, f"warm c{mine.length}", mine, arguments.warmup)
        for _ in range(arguments.rounds):
            bench.run("create", ours, level, arguments.duration)
            for mine in targets:
                run_cancels(bench, f"cancel {mine.length}", mine, arguments.duration)
    streams = {f"cancel {length}": lengths_read(length) for length in lengths}
    print(
        f"\ncancel: mean of {arguments.rounds} runs per stream length and level; events "
        "read: the stream's length before a cancel (every cancel reads its whole stream)\n"
    )
    print(report.cancel(bench.runs, streams))
    print(f"\nrows inserted for the streams: {bench.target['ours'].preloaded_rows:,}")


def rebuild(bench: Bench) -> None:
    """Each size: its history, each projection rebuilt, the SQL reference; a rebuild whose
    rows differ from the reference fails the benchmark."""
    arguments = bench.arguments
    results = []
    for size in arguments.rebuild_sizes:
        result = measure_size(bench.server, size, arguments.tree, arguments.rebuild_batch_size)
        results.append(result)
        bench.failures += [] if result.ok else [f"rebuild {size:,}: {result.differing_rows}"]
    print("\nrebuild: events/s per projection, beside SQL alone\n")
    print(report.rebuilds(results))
    if arguments.pictures:
        print(f"drawn: {report.rebuild_chart(results, arguments.pictures / 'rebuild.svg')}")


def freshness(bench: Bench) -> None:
    """A warm-up, then ``--rounds`` runs of ``--duration`` at ``--freshness-rate``; the
    commands they write are counted as written outside the audited runs."""
    arguments, ours, database = bench.arguments, bench.systems[0], bench.target["ours"]
    before = database.scalar("SELECT count(*) FROM events")
    results = []
    for round_number in range(arguments.rounds + (1 if arguments.warmup > 0 else 0)):
        warm = arguments.warmup > 0 and round_number == 0
        seconds = arguments.warmup if warm else arguments.duration
        load = os.getloadavg()[0]
        result = measure_freshness(
            ours.url, rate=arguments.freshness_rate, seconds=seconds, tag=f"{round_number}"
        )
        print(f"{'warm-up ' if warm else ''}{result.describe()}; load {load:.1f}", flush=True)
        if result.statuses:
            bench.failures.append(f"freshness: answers {dict(result.statuses)}")
        if not warm:
            results.append(result)
    database.preloaded_rows += database.scalar("SELECT count(*) FROM events") - before
    merged = merge_freshness(results)
    print(f"\nfreshness, {len(results)} runs together: {merged.describe()}")
    if arguments.pictures:
        print(f"drawn: {report.freshness_chart(merged, arguments.pictures / 'freshness.svg')}")


def queries(bench: Bench) -> None:
    """Each endpoint: a warm-up, then ``--rounds`` runs at each level, then pgbench running
    its statement as many seconds at the same concurrency."""
    arguments, ours, database = bench.arguments, bench.systems[0], bench.target["ours"]
    users = arguments.query_events[0] // STEPS // 2 * 2
    pgbench: dict[tuple[str, int], float] = {}
    for endpoint in ENDPOINTS:
        for level in arguments.query_levels:
            load = query_workload(endpoint, users, bench.workdir, level)
            if arguments.warmup > 0:
                bench.run(f"warm {endpoint}", ours, level, arguments.warmup, load)
            for _ in range(arguments.rounds):
                bench.run(endpoint, ours, level, arguments.duration, load)
            script = pgbench_script(endpoint, users, bench.workdir / "pgbench-query.sql")
            tps = run_pgbench_select(
                database.dsn, script, clients=level, seconds=arguments.duration
            )
            pgbench[(endpoint, level)] = tps
            print(f"pgbench {endpoint} c={level}: {tps:,.0f} statements/s", flush=True)
    print(f"\nqueries: mean of {arguments.rounds} runs per endpoint and level\n")
    print(report.queries(bench.runs, list(ENDPOINTS), pgbench))


def run_cancels(bench: Bench, phase: str, targets: CancelTargets, seconds: float) -> None:
    prepared = targets.prepare(seconds)
    if prepared:
        print(f"{phase}: {prepared}", flush=True)
    done = bench.run(phase, bench.systems[0], targets.connections, seconds, targets.workload())
    targets.consume(done.load)


def lengths_read(length: int) -> str:
    last = length + cancels_per_stream(length) - 1
    return str(length) if last == length else f"{length}..{last}"


def _unprojected(target: dict[str, Database]) -> Database | None:
    """The database the ceiling's rows may go to: ours, unless a projector reads it (its
    rows are no orders a projection can apply), then the peer's or 'other''s, if any."""
    for name in ("ours", "peer", "other"):
        if name in target and not target[name].projected:
            return target[name]
    return None


def ceiling(arguments: argparse.Namespace, database: Database | None) -> None:
    """What PostgreSQL itself does here: pgbench, one durable single-row insert per commit."""
    if arguments.pgbench_seconds <= 0:
        return
    if database is None:
        print("postgresql ceiling: not measured (every database is read by the projector)")
        return
    high_water = database.high_water_id()
    tps = run_pgbench(database.dsn, clients=25, seconds=arguments.pgbench_seconds)
    database.pgbench_rows += database.scalar(
        "SELECT count(*) FROM events WHERE id > %s", high_water
    )
    print(f"postgresql ceiling: pgbench -c 25 -j 2, one insert per commit: {tps:,.0f} tps")


def profile(bench: Bench) -> None:
    """Our service alone at each level, with pg_stat_statements and py-spy (if given)."""
    arguments, ours, database = bench.arguments, bench.systems[0], bench.target["ours"]
    rate = 200
    for level in arguments.levels:
        profiling.reset_statements(database)
        spies = []
        if arguments.py_spy:
            spies = profiling.start_py_spy(
                arguments.py_spy,
                ours.workers,
                seconds=arguments.duration,
                rate=rate,
                native=arguments.native,
                workdir=bench.workdir,
            )
            time.sleep(0.5)  # attached before the load starts
        bench.run("profile", ours, level, arguments.duration)
        profiling.finish_py_spy(spies, timeout=arguments.duration + 30)
        print(f"\npg_stat_statements at {level} connections:\n")
        print(profiling.top_statements(database))
        for output, _ in spies:
            print()
            print(profiling.summarize_stacks(output, rate=rate, seconds=arguments.duration))


def check_totals(runs: list[Run], databases: list[Database], arguments: argparse.Namespace) -> bool:
    """Nothing but the audited rows (and the pre-loaded ones) is in any events table."""
    expected = sum(run.audit.rows for run in runs)
    expected += sum(database.pgbench_rows + database.preloaded_rows for database in databases)
    if arguments.growth:
        expected += max(arguments.sizes)
    by_name = {database.name: database for database in databases}  # a peer's view is a copy
    found = sum(database.event_count() for database in by_name.values())
    print(f"\nevents in the table(s): {found:,}, expected {expected:,}")
    return found == expected


def check_read_models(target: dict[str, Database]) -> bool:
    """Each database whose projector writes rows: once it has caught up, its read models
    hold a row for every order, user and open order its events name."""
    ok = True
    for name, database in target.items():
        if database.rows_projected:
            projector_caught_up(database)
            found, expected = database.read_model_rows()
            print(
                f"read models of {name}: {found[0]:,} orders, {found[1]:,} user summaries,"
                f" {found[2]:,} open orders; the events name {expected[0]:,},"
                f" {expected[1]:,} and {expected[2]:,}"
            )
            ok = ok and found == expected
    return ok


def print_memory(systems: list[System]) -> None:
    print("\npeak memory per worker (VmHWM; VmRSS now):")
    for system in systems:
        for pid in system.workers:
            memory = memory_kib(pid)
            print(
                f"  {system.name:<5} pid {pid}: peak {memory.get('VmHWM', 0) / 1024:.1f} MiB, "
                f"now {memory.get('VmRSS', 0) / 1024:.1f} MiB"
            )


def print_header(arguments: argparse.Namespace, settings: dict[str, str]) -> None:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    cqrs = {name: value for name, value in os.environ.items() if name.startswith("CQRS_")}
    print(f"cqrs-demo benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"machine: {os.cpu_count()} CPUs ({model}), {platform.platform()}")
    print(f"python {platform.python_version()}; service code: {describe_tree(arguments.tree)}")
    if arguments.compare_tree:
        print(f"compared with ('other'): {describe_tree(arguments.compare_tree)}")
    print(f"service environment beyond the defaults: {cqrs or 'none'}")
    print(f"postgresql settings: {settings}")
    print(f"command: {' '.join(sys.argv)}", flush=True)


def _size_name(size: int) -> str:
    if size >= 1_000_000:
        return f"{size / 1_000_000:g}M"
    return f"{size / 1_000:g}k" if size >= 1_000 else str(size)


if __name__ == "__main__":
    sys.exit(main())
