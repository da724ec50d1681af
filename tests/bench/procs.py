"""Reading /proc: CPU time per process group, the machine's busy time, peak memory.

Everything here only reads; the processes it names were started by the benchmark.
"""

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

PidSource = Callable[[], Iterable[int]]


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name; None if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, *, with_reaped_children: bool = False) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` (zeros if it is gone); optionally with the time
    of its children that it has waited for (PostgreSQL's exited backends)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0, 0.0
    user, system = int(fields[11]), int(fields[12])
    if with_reaped_children:
        user, system = user + int(fields[13]), system + int(fields[14])
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def memory_kib(pid: int) -> dict[str, int]:
    """``VmHWM`` (peak resident set) and ``VmRSS`` of ``pid`` in KiB; empty if it is gone."""
    values: dict[str, int] = {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return values
    for line in lines:
        name, _, rest = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            values[name] = int(rest.split()[0])
    return values


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    ticks = [int(value) for value in first[1:9]]  # user nice system idle iowait irq softirq steal
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    """(user, system) CPU seconds per process of each named group, and the machine's ticks,
    at one moment."""

    groups: dict[str, dict[int, tuple[float, float]]]
    machine: tuple[int, int]


def snapshot(groups: Mapping[str, PidSource], reaping: Iterable[int] = ()) -> CpuSnapshot:
    """CPU seconds of every pid of every group; pids in ``reaping`` count reaped children."""
    reapers = set(reaping)
    return CpuSnapshot(
        groups={
            name: {pid: cpu_seconds(pid, with_reaped_children=pid in reapers) for pid in source()}
            for name, source in groups.items()
        },
        machine=machine_ticks(),
    )


def cpu_used(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """CPU seconds each group used between two snapshots, ``GROUP sys`` the system part of
    it, and ``machine`` for all CPUs."""
    used: dict[str, float] = {}
    for name, pids in after.groups.items():
        earlier = before.groups[name]
        user = sum(now[0] - earlier.get(pid, (0.0, 0.0))[0] for pid, now in pids.items())
        system = sum(now[1] - earlier.get(pid, (0.0, 0.0))[1] for pid, now in pids.items())
        used[name] = user + system
        used[f"{name} sys"] = system
    used["machine"] = (after.machine[0] - before.machine[0]) / CLOCK_TICKS
    return used
