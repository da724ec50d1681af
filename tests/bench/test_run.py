"""The benchmark itself, run for a few seconds, so that it cannot rot unnoticed: one level,
one short run of our service, the audit of every 202 on (it always is); and the same for
``--cancel``, with two stream lengths and two wrk threads; and for the read side's modes
(``--rebuild``, ``--queries``, ``--freshness``, ``--projector``, the floor projector, and the
pictures), and the projector's cost per event (``projector_cost``)."""

import re
import subprocess
from pathlib import Path
from xml.etree import ElementTree

from tests.support import REPO, require_binary

QUICK = ["--duration=1", "--rounds=1", "--warmup=0"]


def finished_output(command: list[str]) -> str:
    """The output of ``command`` (run from the repository), once it has exited 0."""
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def run_benchmark(*options: str) -> str:
    """``tests/bench/run`` with ``options``; its output, once it has exited 0."""
    require_binary("wrk")
    output = finished_output([str(REPO / "tests/bench/run"), *options])
    assert re.search(r"events in the table\(s\): ([\d,]+), expected \1\n", output), output[-4000:]
    return output


def test_a_short_benchmark_run_passes_its_audit_and_its_total() -> None:
    output = run_benchmark("--levels=1", "--pgbench-seconds=0", *QUICK)
    audit = re.search(r"audit ok \((\d+) acknowledged, (\d+) stored without", output)
    assert audit is not None, output[-4000:]
    assert int(audit[1]) > 0, "no 202 to audit"


def test_a_short_cancel_run_cancels_open_orders_of_streams_of_each_length() -> None:
    output = run_benchmark("--cancel", "--stream-lengths=1,20", "--cancel-levels=2", *QUICK)
    audits = re.findall(
        r"audit ok \(\d+ acknowledged.*; (\d+) OrderCancelled rows = (\d+) 202s .* stream "
        r"length before each cancel (\d+)\.\.(\d+) \(prepared (\d+)\.\.(\d+)\)",
        output,
    )
    assert [(low, high) for *_, low, high in audits] == [("1", "1"), ("20", "21")], output[-4000:]
    for rows, acknowledged, first, last, low, high in audits:
        assert int(acknowledged) > 0, "no 202 to audit"
        assert int(rows) >= int(acknowledged)
        assert int(low) <= int(first) <= int(last) <= int(high)
    row = r"\n\s+2 \| cancel 20 \(1 runs\) \|\s+20\.\.21 \(mean 2[01]\.\d\) \|"
    assert re.search(row, output), output[-4000:]
    assert re.search(r"2 connection\(s\): p50 [+-][\d.]+ us", output), output[-4000:]


def test_a_short_rebuild_run_rebuilds_each_projection_as_sql_computes_it(tmp_path: Path) -> None:
    output = run_benchmark("--rebuild", "--rebuild-sizes=20k", f"--pictures={tmp_path}")
    rates = re.findall(r"rebuild (\w+): 20,000 events in [\d.]+ s .*: ([\d,]+) events/s", output)
    assert [name for name, _ in rates] == ["orders", "user_order_summaries"], output[-4000:]
    differing = "{'orders': 0, 'user_order_summaries': 0, 'user_order_summary_open_orders': 0}"
    assert f"rows differing from the rebuilt tables: {differing}" in output, output[-4000:]
    assert re.search(r"20,000 \| +user_order_summaries \| .* \| +[\d.]+x \|", output)
    assert_svg(tmp_path / "rebuild.svg", "events/s")


def test_a_short_query_run_answers_every_request_with_a_200(tmp_path: Path) -> None:
    output = run_benchmark("--queries", "--query-events=20k", "--query-levels=2", *QUICK)
    for endpoint in ("order", "user orders", "summary"):
        row = rf"\n\s+2 \| +{endpoint} \| +[\d,]+ \| .* \| +[\d,]+ \| +[\d.]+x\n"
        assert re.search(row, output), output[-4000:]
    assert output.count("audit ok") == 3, output[-4000:]


def test_a_short_freshness_run_sees_every_probe_in_the_query_api(tmp_path: Path) -> None:
    output = run_benchmark("--freshness", "--freshness-rate=200", f"--pictures={tmp_path}", *QUICK)
    found = re.search(
        r"runs together: freshness at [\d,]+ commands/s .*: (\d+) probes, 202 -> "
        r"visible p50 ([\d.]+) ms.*other answers: none",
        output,
    )
    assert found is not None, output[-4000:]
    assert int(found[1]) > 0
    assert_svg(tmp_path / "freshness.svg", "share of probes visible")


def test_a_short_run_with_the_projector_draws_requests_and_p99_by_connections(
    tmp_path: Path,
) -> None:
    output = run_benchmark(
        "--levels=1,2", "--pgbench-seconds=0", "--projector", f"--pictures={tmp_path}", *QUICK
    )
    assert "audit ok" in output, output[-4000:]
    assert_svg(tmp_path / "create-rps.svg", "requests/s")
    assert_svg(tmp_path / "create-p99.svg", "p99 latency, ms")


def test_a_short_run_beside_the_floor_projector_writes_its_rows_or_passes_over_them() -> None:
    output = run_benchmark(
        "--levels=2",
        "--pgbench-seconds=0",
        "--projector=floor",
        f"--compare-tree={REPO}",
        "--compare-projector=floor-pass-over",
        *QUICK,
    )
    rows = re.search(
        r"read models of ours: ([\d,]+) orders, \1 user summaries, \1 open orders; the events"
        r" name \1, \1 and \1\n",
        output,
    )
    assert rows is not None, output[-4000:]
    assert int(rows[1].replace(",", "")) > 0
    assert "read models of other" not in output  # passing over, it writes none
    caught_up = re.findall(r"projector \d+ events behind at the end, [\d.]+ s to apply", output)
    assert len(caught_up) == 2, output[-4000:]  # each caught up after its run


def assert_svg(path: Path, label: str) -> None:
    """``path`` is an SVG document with ``label`` and at least one line of points."""
    root = ElementTree.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [element.text for element in root.iter("{http://www.w3.org/2000/svg}text")]
    assert label in texts, texts
    lines = list(root.iter("{http://www.w3.org/2000/svg}polyline"))
    assert lines
    assert all(line.get("points", "").count(",") >= 1 for line in lines)


def test_the_projector_cost_counts_its_cpu_and_its_wal_by_kind_of_record() -> None:
    module = ["-m", "tests.bench.projector_cost", "--events=5000", "--rounds=1", "--wal-records"]
    output = finished_output([str(REPO / ".venv/bin/python"), *module])
    figures = re.search(
        r"round 1: 5,000 events .* projector ([\d.]+) µs CPU/event, PostgreSQL ([\d.]+) µs"
        r" CPU/event, WAL ([\d,]+) B/event",
        output,
    )
    assert figures is not None, output[-4000:]
    assert all(float(figure.replace(",", "")) > 0 for figure in figures.groups()), output
    # Each new order is a row in each of the three tables: three heap inserts per event.
    inserts = re.search(r"([\d.]+) records/event  Heap/INSERT\n", output)
    assert inserts is not None, output[-4000:]
    assert 2.5 < float(inserts.group(1)) < 3.5, output
