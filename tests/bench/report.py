"""The tables printed at the end: figures per level and system, and the ratios between them."""

import statistics
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path

from tests.bench import svg
from tests.bench.freshness import Freshness
from tests.bench.rebuild import SizeResult
from tests.bench.runs import Run

Figure = Callable[[Run], float]

FIGURES: dict[str, Figure] = {
    "rps": lambda run: run.load.rps,
    "p50 ms": lambda run: run.load.p50_ms,
    "p99 ms": lambda run: run.load.p99_ms,
    "errors": lambda run: float(run.load.errors),
    "cpu ms/req": lambda run: 1000 * run.per_request(run.cpu["service"] + run.cpu["postgres"]),
}
GROWTH_FIGURES: dict[str, Figure] = {
    **FIGURES,
    "pg cpu ms/req": lambda run: 1000 * run.per_request(run.cpu["postgres"]),
    "stmt ms/req": lambda run: run.per_request(run.statement_ms or 0.0),
    "WAL KiB/req": lambda run: run.per_request(run.wal[0]) / 1024,
}


def mean(runs: Sequence[Run], figure: Figure) -> float:
    return statistics.fmean(figure(run) for run in runs)


def _cell(value: float, name: str) -> str:
    if name in ("rps", "errors"):
        return f"{value:,.0f}"
    return f"{value:.3f}" if name.startswith("stmt") else f"{value:.2f}"


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs else "-"


def comparison(runs: Sequence[Run], systems: Sequence[str], phase: str) -> str:
    """Per level, each system's mean figures over its runs, then a row of the first system's
    ratio to each other system (rps above 1, latencies and CPU below 1 favour the first)."""
    chosen = [run for run in runs if run.phase == phase]
    lines = [["conns", "system", *FIGURES]]
    for level in sorted({run.load.connections for run in chosen}):
        means: dict[str, dict[str, float]] = {}
        for system in systems:
            mine = [r for r in chosen if r.system == system and r.load.connections == level]
            if mine:
                means[system] = {name: mean(mine, figure) for name, figure in FIGURES.items()}
                lines.append(
                    [str(level), f"{system} ({len(mine)} runs)"]
                    + [_cell(value, name) for name, value in means[system].items()]
                )
        first = systems[0]
        for other in systems[1:]:
            if first in means and other in means:
                lines.append(
                    [str(level), f"{first}/{other}"]
                    + [
                        "" if name == "errors" else _ratio(means[first][name], means[other][name])
                        for name in FIGURES
                    ]
                )
    return _table(lines)


def growth(runs: Sequence[Run], systems: Sequence[str], phases: Sequence[str]) -> str:
    """Per system and level, the mean figures at each table size, and their ratio to the
    figures at the first size (the cost of appending as the table grows)."""
    shown = ["rps", "p50 ms", "p99 ms", "errors", "pg cpu ms/req", "stmt ms/req", "WAL KiB/req"]
    compared = ["rps", "p50 ms", "p99 ms", "stmt ms/req"]
    lines = [["system", "conns", "events", *shown, *(f"{name} x" for name in compared)]]
    for system in systems:
        for level in sorted({r.load.connections for r in runs if r.system == system}):
            first: dict[str, float] = {}
            for phase in phases:
                mine = [
                    r
                    for r in runs
                    if r.system == system and r.phase == phase and r.load.connections == level
                ]
                if not mine:
                    continue
                figures = {name: mean(mine, GROWTH_FIGURES[name]) for name in shown}
                first = first or figures
                lines.append(
                    [system, str(level), phase]
                    + [_cell(figures[name], name) for name in shown]
                    + [_ratio(figures[name], first[name]) for name in compared]
                )
    return _table(lines)


CANCEL_FIGURES: dict[str, Figure] = {
    "rps": lambda run: run.load.rps,
    "p50 ms": lambda run: run.load.p50_ms,
    "p99 ms": lambda run: run.load.p99_ms,
    "p99.9 ms": lambda run: run.load.p999_ms,
    "errors": lambda run: float(run.load.errors),
    "svc cpu ms/req": lambda run: 1000 * run.per_request(run.cpu["service"]),
    "pg cpu ms/req": lambda run: 1000 * run.per_request(run.cpu["postgres"]),
}
# Per event read, from the slope over the stream lengths: figure name, shown as, scale.
PER_EVENT = (
    ("p50 ms", "p50", 1000.0),
    ("svc cpu ms/req", "service CPU", 1000.0),
    ("pg cpu ms/req", "postgres CPU", 1000.0),
)


def cancel(runs: Sequence[Run], streams: Mapping[str, str]) -> str:
    """Per level, the mean figures of the ``create`` runs and of each cancel phase (with
    the stream lengths it was prepared for, from ``streams``, and the mean length its
    audits found), each with its p50 as a multiple of create's; then, per level, what one
    more event in the stream adds to a cancel (the least-squares slope over the mean
    lengths, in microseconds)."""
    lines = [["conns", "command", "events read", *CANCEL_FIGURES, "p50 x create"]]
    slopes = []
    for level in sorted({run.load.connections for run in runs}):
        mine = [run for run in runs if run.load.connections == level]
        create = [run for run in mine if run.phase == "create"]
        base = mean(create, CANCEL_FIGURES["p50 ms"]) if create else 0.0
        rows = [("create", "0", create)] + [
            (phase, lengths, [run for run in mine if run.phase == phase])
            for phase, lengths in streams.items()
        ]
        for phase, lengths, chosen in rows:
            if chosen:
                figures = [mean(chosen, figure) for figure in CANCEL_FIGURES.values()]
                read = _events_read(chosen)
                shown = lengths if read is None else f"{lengths} (mean {read:.1f})"
                lines.append(
                    [str(level), f"{phase} ({len(chosen)} runs)", shown]
                    + [
                        _cell(value, name)
                        for value, name in zip(figures, CANCEL_FIGURES, strict=True)
                    ]
                    + [_ratio(figures[1], base)]
                )
        slopes.append(f"{level} connection(s): " + _per_event(mine, streams))
    return (
        _table(lines)
        + "\n\nper event read (slope over the mean stream length):\n"
        + ("\n".join(slopes))
    )


def _events_read(runs: Sequence[Run]) -> float | None:
    known = [run.audit.events_read for run in runs if run.audit.events_read is not None]
    return statistics.fmean(known) if known else None


def _per_event(runs: Sequence[Run], streams: Mapping[str, str]) -> str:
    points = []
    for phase in streams:
        chosen = [run for run in runs if run.phase == phase]
        read = _events_read(chosen)
        if read is not None:
            points.append((read, chosen))
    if len(points) < 2:
        return "needs two stream lengths"
    shown = []
    for name, label, scale in PER_EVENT:
        slope, _ = statistics.linear_regression(
            [length for length, _ in points],
            [mean(chosen, CANCEL_FIGURES[name]) for _, chosen in points],
        )
        shown.append(f"{label} {slope * scale:+.2f} us")
    return ", ".join(shown)


def rebuilds(results: Sequence[SizeResult]) -> str:
    """Per size and projection: events/s, its CPU per event, and the ratio to SQL alone."""
    lines = [
        [
            "events",
            "projection",
            "seconds",
            "events/s",
            "rebuild CPU us/event",
            "PostgreSQL CPU us/event",
            "SQL alone events/s",
            "rebuild / SQL",
            "load avg",
        ]
    ]
    for result in results:
        events = result.history.events
        load = f"{result.load[0][0]:.1f} -> {result.load[1][0]:.1f}"
        for rebuilt in result.rebuilds:
            lines.append(
                [
                    f"{events:,}",
                    rebuilt.projection,
                    f"{rebuilt.seconds:.1f}",
                    f"{rebuilt.rate:,.0f}",
                    f"{1e6 * rebuilt.cpu['rebuild'] / events:.1f}",
                    f"{1e6 * rebuilt.cpu['postgres'] / events:.1f}",
                    f"{result.sql_rate:,.0f}",
                    f"{rebuilt.rate / result.sql_rate:.2f}x",
                    load,
                ]
            )
    return _table(lines)


def queries(
    runs: Sequence[Run], endpoints: Sequence[str], pgbench: Mapping[tuple[str, int], float]
) -> str:
    """Per endpoint and level: requests/s, latencies, CPU per request, pgbench's rate."""
    lines = [
        [
            "conns",
            "endpoint",
            "rps",
            "p50 ms",
            "p99 ms",
            "service CPU ms/req",
            "PostgreSQL CPU ms/req",
            "pgbench same SELECT/s",
            "ours / pgbench",
        ]
    ]
    for (endpoint, level), tps in pgbench.items():
        mine = [run for run in runs if run.phase == endpoint and run.load.connections == level]
        if not mine or endpoint not in endpoints:
            continue
        rps = mean(mine, lambda run: run.load.rps)
        lines.append(
            [
                str(level),
                endpoint,
                f"{rps:,.0f}",
                f"{mean(mine, lambda run: run.load.p50_ms):.2f}",
                f"{mean(mine, lambda run: run.load.p99_ms):.2f}",
                f"{mean(mine, lambda run: 1000 * run.per_request(run.cpu['service'])):.3f}",
                f"{mean(mine, lambda run: 1000 * run.per_request(run.cpu['postgres'])):.3f}",
                f"{tps:,.0f}",
                f"{rps / tps:.2f}x",
            ]
        )
    return _table(lines)


def create_charts(runs: Sequence[Run], systems: Sequence[str], phase: str, directory: Path) -> str:
    """Requests/s and p99 by connections, each system's mean: two SVG files."""
    chosen = [run for run in runs if run.phase == phase]
    levels = sorted({run.load.connections for run in chosen})
    drawn = []
    for name, figure, unit in (
        ("rps", lambda run: run.load.rps, "requests/s"),
        ("p99", lambda run: run.load.p99_ms, "p99 latency, ms"),
    ):
        series = {}
        for system in systems:
            points = []
            for level in levels:
                mine = [r for r in chosen if r.system == system and r.load.connections == level]
                if mine:
                    points.append((float(level), mean(mine, figure)))
            series[system] = points
        path = directory / f"create-{name}.svg"
        svg.line_chart(
            path,
            f"Create: {unit} by connections",
            "connections",
            unit,
            series,
            x_categories=[float(level) for level in levels],
        )
        drawn.append(str(path))
    return ", ".join(drawn)


def freshness_chart(result: Freshness, path: Path) -> Path:
    """The share of probes visible within t ms of their 202, against t."""
    ordered = sorted(result.probes_ms)
    step = max(1, len(ordered) // 200)
    points = [(ms, (index + 1) / len(ordered)) for index, ms in enumerate(ordered)][::step]
    return svg.line_chart(
        path,
        f"Freshness at {result.rate:,.0f} commands/s: 202 to visible in the query API",
        "ms after the 202",
        "share of probes visible",
        {f"{len(ordered):,} probes": points},
    )


def rebuild_chart(results: Sequence[SizeResult], path: Path) -> Path:
    """Events/s over the rebuild's time, between progress lines, per size and projection."""
    series = {}
    for result in results:
        for rebuilt in result.rebuilds:
            points = rebuilt.progress
            series[f"{rebuilt.projection}, {result.history.events:,} events"] = [
                (now, (events - before) / max(now - then, 1e-9))
                for (then, before), (now, events) in pairwise(points)
            ]
    return svg.line_chart(path, "Rebuild: events/s over time", "seconds", "events/s", series)


def _table(lines: list[list[str]]) -> str:
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]
    rendered = [
        " | ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    ]
    rendered.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(rendered)
