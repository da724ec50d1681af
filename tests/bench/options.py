"""The benchmark's command-line options (``tests/bench/run --help``)."""

import argparse
import os
from pathlib import Path

from tests.bench.systems import PROJECTORS

DESCRIPTION = (
    "The throughput benchmark: our service against the seed's Go peer, at production durability."
)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tests/bench/run", description=DESCRIPTION)
    parser.add_argument(
        "--peer",
        default=os.environ.get("CQRS_BENCH_PEER"),
        metavar="CMD",
        help="the peer's command, e.g. /tmp/seed-go (default: $CQRS_BENCH_PEER); "
        "leading NAME=VALUE words go to its environment; DSN and ADDR are set",
    )
    parser.add_argument(
        "--levels",
        type=_numbers,
        default=[1, 8, 32, 128],
        metavar="N,N",
        help="connections (default 1,8,32,128)",
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, metavar="SECONDS", help="per run (default 10)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="runs per system and level (default 2)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="an unreported run per system first (default 3; 0: none)",
    )
    parser.add_argument(
        "--projector",
        nargs="?",
        const="project",
        choices=PROJECTORS,
        help="run a projector beside our service (its CPU counted as the service's), and"
        " beside 'other' one of its own tree: 'project' (the default) is cqrs-demo project;"
        " 'floor' writes the same rows by one SQL statement per batch, 'floor-pass-over'"
        " only follows the feed (tests/bench/floor_projector.py, the create load only)",
    )
    parser.add_argument(
        "--compare-projector",
        choices=PROJECTORS,
        help="the projector beside 'other' (default: as --projector)",
    )
    parser.add_argument("--tree", type=Path, help="take our service's code from TREE/service")
    parser.add_argument("--commit", metavar="REV", help="... from commit REV (git archive)")
    parser.add_argument(
        "--compare-tree",
        type=Path,
        metavar="TREE",
        help="also run the service from TREE/service ('other', its own database)",
    )
    parser.add_argument("--compare-commit", metavar="REV", help="... from commit REV")
    parser.add_argument(
        "--compare-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a CQRS_* variable for 'other' only (repeatable), e.g. the same tree with"
        " CQRS_METRICS_PORT=9464",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--growth", action="store_true", help="appends against a pre-filled table")
    mode.add_argument("--profile", action="store_true", help="py-spy and pg_stat_statements")
    mode.add_argument(
        "--cancel",
        action="store_true",
        help="cancels against streams of --stream-lengths events (tests/bench/cancel.py), "
        "new orders alongside for reference; no peer",
    )
    mode.add_argument(
        "--rebuild",
        action="store_true",
        help="rebuild each projection from --rebuild-sizes events (tests/bench/rebuild.py), "
        "beside the same read models computed in SQL; no service, no peer",
    )
    mode.add_argument(
        "--queries",
        action="store_true",
        help="requests/s of each query endpoint at --query-levels, beside pgbench running "
        "the same SELECT (tests/bench/queries.py); no peer",
    )
    mode.add_argument(
        "--freshness",
        action="store_true",
        help="time from a command's 202 to its order visible in the query API, under "
        "--freshness-rate commands/s, with the projector (tests/bench/freshness.py); no peer",
    )
    parser.add_argument(
        "--freshness-rate",
        type=float,
        default=2000.0,
        metavar="N",
        help="commands/s of the steady load in --freshness (default 2000)",
    )
    parser.add_argument(
        "--query-events",
        type=_numbers,
        default=[1_000_000],
        metavar="N",
        help="events of the history the queries read, k and M allowed (default 1M)",
    )
    parser.add_argument(
        "--query-levels",
        type=_numbers,
        default=[32],
        metavar="N,N",
        help="connections in --queries (default 32)",
    )
    parser.add_argument(
        "--rebuild-sizes",
        type=_numbers,
        default=[1_000_000, 10_000_000],
        metavar="N,N",
        help="events of the history each --rebuild run rebuilds from (default 1M,10M)",
    )
    parser.add_argument(
        "--rebuild-batch-size",
        type=int,
        metavar="N",
        help="the rebuild's --batch-size (default: the command's own)",
    )
    parser.add_argument(
        "--sizes",
        type=_numbers,
        default=[0, 1_000_000, 10_000_000],
        metavar="N,N",
        help="events loaded before the growth runs, k and M allowed (default 0,1M,10M)",
    )
    parser.add_argument(
        "--growth-levels",
        type=_numbers,
        default=[1, 32],
        metavar="N,N",
        help="connections in --growth (default 1,32)",
    )
    parser.add_argument(
        "--stream-lengths",
        type=_numbers,
        default=[1, 10, 100],
        metavar="N,N",
        help="events in a user's stream before its first cancel, in --cancel (default "
        "1,10,100); it takes k = max(1, N // 10) cancels, so it holds N..N+k-1 before each",
    )
    parser.add_argument(
        "--cancel-levels",
        type=_numbers,
        default=[1, 32],
        metavar="N,N",
        help="connections in --cancel (default 1,32)",
    )
    parser.add_argument(
        "--pgbench-seconds",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="measure PostgreSQL's own ceiling first with pgbench (0: skip)",
    )
    parser.add_argument("--py-spy", metavar="PATH", help="py-spy for --profile")
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument(
        "--pictures",
        type=Path,
        metavar="DIR",
        help="draw the results as SVG files in DIR (docs/performance for the documented runs)",
    )
    parser.add_argument("--results", type=Path, help="keep logs, wrk output and runs.json here")
    arguments = parser.parse_args(argv)
    if (arguments.compare_tree or arguments.compare_commit) and (
        arguments.growth
        or arguments.cancel
        or arguments.rebuild
        or arguments.queries
        or arguments.freshness
    ):
        parser.error("--compare-tree/--compare-commit are for the baseline runs only")
    if arguments.compare_env and not (arguments.compare_tree or arguments.compare_commit):
        parser.error("--compare-env is for 'other': give --compare-tree or --compare-commit")
    if arguments.compare_projector and not (
        arguments.projector and (arguments.compare_tree or arguments.compare_commit)
    ):
        parser.error(
            "--compare-projector is for 'other' beside --projector: give --projector and"
            " --compare-tree or --compare-commit"
        )
    if arguments.projector:
        arguments.compare_projector = arguments.compare_projector or arguments.projector
    for assignment in arguments.compare_env:
        name, equals, _ = assignment.partition("=")
        if not (equals and name.startswith("CQRS_")):
            parser.error(f"--compare-env {assignment!r}: must be CQRS_NAME=VALUE")
    if min(arguments.stream_lengths) < 1:
        parser.error("--stream-lengths: a stream to cancel in holds at least one order")
    return arguments


def _numbers(text: str) -> list[int]:
    units = {"k": 1_000, "M": 1_000_000}
    return [
        int(float(word[:-1]) * units[word[-1]]) if word[-1] in units else int(word)
        for word in text.split(",")
    ]
