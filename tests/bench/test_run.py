"""The benchmark itself, run for a few seconds, so that it cannot rot unnoticed: one level,
one short run of our service, the audit of every 202 on (it always is)."""

import re
import subprocess

from tests.support import REPO, require_binary


def test_a_short_benchmark_run_passes_its_audit_and_its_total() -> None:
    require_binary("wrk")
    result = subprocess.run(
        [
            str(REPO / "tests/bench/run"),
            "--levels=1",
            "--duration=1",
            "--rounds=1",
            "--warmup=0",
            "--pgbench-seconds=0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    audit = re.search(r"audit ok \((\d+) acknowledged, (\d+) stored without", output)
    assert audit is not None, output[-4000:]
    assert int(audit[1]) > 0, "no 202 to audit"
    assert re.search(r"events in the table\(s\): ([\d,]+), expected \1\n", output), output[-4000:]
