"""The benchmark itself, run for a few seconds, so that it cannot rot unnoticed: one level,
one short run of our service, the audit of every 202 on (it always is); and the same for
``--cancel``, with two stream lengths and two wrk threads."""

import re
import subprocess

from tests.support import REPO, require_binary

QUICK = ["--duration=1", "--rounds=1", "--warmup=0"]


def run_benchmark(*options: str) -> str:
    """``tests/bench/run`` with ``options``; its output, once it has exited 0."""
    require_binary("wrk")
    result = subprocess.run(
        [str(REPO / "tests/bench/run"), *options],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
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
