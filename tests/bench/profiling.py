"""Where the time goes: py-spy on each worker, pg_stat_statements in the database.

py-spy is not in the project's lock: give its path (``--py-spy``), e.g. from a scratch
virtualenv (``python3 -m venv /tmp/prof && /tmp/prof/bin/pip install py-spy``).
"""

import subprocess
from collections import Counter
from pathlib import Path

from tests.bench.postgres import Database

TOP = 25

_STATEMENTS = b"""
SELECT calls, total_exec_time, mean_exec_time, rows, shared_blks_hit, shared_blks_read,
       shared_blks_dirtied, wal_bytes, wal_fpi, regexp_replace(query, '\\s+', ' ', 'g')
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC
LIMIT 12
"""


def start_py_spy(
    py_spy: str, pids: list[int], *, seconds: float, rate: int, native: bool, workdir: Path
) -> list[tuple[Path, "subprocess.Popen[bytes]"]]:
    """One ``py-spy record`` per pid, raw (collapsed) stacks, for ``seconds``."""
    started = []
    for pid in pids:
        output = workdir / f"py-spy-{pid}{'-native' if native else ''}.txt"
        command = [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds))]
        command += ["--rate", str(rate), "--format", "raw", "--output", str(output)]
        if native:
            command.append("--native")
        log = (workdir / f"py-spy-{pid}.log").open("wb")
        started.append((output, subprocess.Popen(command, stdout=log, stderr=log)))
    return started


def finish_py_spy(started: list[tuple[Path, "subprocess.Popen[bytes]"]], timeout: float) -> None:
    for _, process in started:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def summarize_stacks(path: Path, *, rate: int, seconds: float) -> str:
    """Top frames by own samples and by samples that include them, as % of active samples."""
    if not path.exists():
        return f"{path.name}: no output (see {path.with_suffix('.log').name})"
    own: Counter[str] = Counter()
    including: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames[1:]):  # the first is the process/thread name
            including[frame] += count
    busy = 100 * total / max(rate * seconds, 1)
    lines = [f"{path.name}: {total} samples, busy {busy:.0f}% of the time sampled"]
    for title, counter in (("own time", own), ("including callees", including)):
        lines.append(f"  top {TOP} by {title}:")
        lines += [
            f"    {100 * count / max(total, 1):5.1f}%  {frame[:150]}"
            for frame, count in counter.most_common(TOP)
        ]
    return "\n".join(lines)


def reset_statements(database: Database) -> None:
    database.conn.execute(b"CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    database.conn.execute(b"SELECT pg_stat_statements_reset()")


def top_statements(database: Database) -> str:
    lines = [
        "calls | total ms | mean ms | rows | blks hit | read | dirtied | WAL bytes | FPI | query"
    ]
    for row in database.conn.execute(_STATEMENTS):
        calls, total, mean, rows, hit, read, dirtied, wal, fpi, query = row
        lines.append(
            f"{calls} | {total:.0f} | {mean:.3f} | {rows} | {hit} | {read} | {dirtied} | "
            f"{wal} | {fpi} | {str(query)[:160]}"
        )
    return "\n".join(lines)
