"""``cqrs-demo status``: the appliance on one screen, one line per thing to look at.

The release the API runs, the two units and the API's workers (systemd), the database
(reachable, primary or standby, schema version), the read database when the queries have
one (``CQRS_READ_DATABASE_URL``), each projection and its lag, and the last backup. Each
line is ``ok`` or ``ATTENTION``; the command exits 1 when any line that is not ignored
needs attention, so a monitoring system can run it as a check of its own.

Nothing here talks to PostgreSQL itself (``store.status`` does) or raises for what it finds:
a failure to find something out is a line that needs attention, saying why.
"""

import asyncio
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cqrs_demo.domain.projections import PROJECTIONS
from cqrs_demo.ports import ProjectionStatus
from cqrs_demo.release import release_id
from cqrs_demo.settings import Settings
from cqrs_demo.store.conninfo import describe
from cqrs_demo.store.errors import StoreError, StoreUnavailable
from cqrs_demo.store.sql import latest_schema_version
from cqrs_demo.store.status import DatabaseStatus, database_status

API_UNIT = "cqrs-demo.service"
PROJECTOR_UNIT = "cqrs-demo-projector.service"
LAG_ATTENTION_SECONDS = 60.0  # a projection further behind than this needs attention
BACKUP_MAX_AGE = timedelta(hours=26)  # a daily backup, with two hours to spare
# `pgbackrest --output=json info`, as cqrs-demo-backup@.service writes it after each backup
# on the database host (role cqrs_pgbackrest): readable without the repository's rights.
BACKUP_INFO = Path("/var/lib/cqrs-demo-backup/info.json")


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the screen: what (``name``, in ``group``), whether it is fine, and why."""

    group: str
    name: str
    ok: bool
    detail: str
    ignored: bool = False

    @property
    def needs_attention(self) -> bool:
        return not self.ok and not self.ignored


def gather(
    settings: Settings, *, ignore: Iterable[str] = (), backup_info: Path = BACKUP_INFO
) -> list[Check]:
    """Every check, in screen order; those in a group of ``ignore`` are marked ignored.
    ``backup_info`` is what the backup unit last wrote of ``pgbackrest info``."""
    checks = [
        release_check(settings),
        unit_check("service", API_UNIT, workers=settings.workers),
        unit_check("projector", PROJECTOR_UNIT, workers=None),
        *database_checks(settings),
        backups_line(backup_info, now=datetime.now(UTC)),
    ]
    skipped = set(ignore)
    return [replace(check, ignored=check.group in skipped) for check in checks]


# The release


def release_check(settings: Settings, timeout: float = 3.0) -> Check:
    """The release the API answers ``/healthz`` with, against the one installed (this
    command's): different means a restart is pending or failed."""
    # An API listening on every address is asked over the loopback.
    loopback = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104
    host = loopback.get(settings.host, settings.host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{settings.port}/healthz"
    installed = release_id()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            running = str(json.loads(answer.read())["release"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return Check("release", "release", False, f"no answer from {url}: {_reason(error)}")
    if running != installed:
        return Check(
            "release",
            "release",
            False,
            f"the API runs {running}, {installed} is installed: restart it"
            " (sudo systemctl restart cqrs-demo cqrs-demo-projector)",
        )
    return Check("release", "release", True, f"{running} (the API's /healthz, as installed)")


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        return str(error.reason)
    return str(error) or type(error).__name__


# The units


def unit_properties(unit: str) -> dict[str, str]:
    """``systemctl show`` of ``unit``; raises ``OSError`` without systemctl."""
    shown = subprocess.run(
        [
            "systemctl",
            "show",
            "--property=LoadState,ActiveState,SubState,MainPID,NRestarts,ActiveEnterTimestamp",
            unit,
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if shown.returncode != 0:
        reason = " ".join(shown.stderr.split()) or f"exit {shown.returncode}"
        raise OSError(f"systemctl show {unit}: {reason}")
    return dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)


def unit_check(group: str, unit: str, *, workers: int | None) -> Check:
    """``unit`` is active, with ``workers`` worker processes besides its main one (when not
    ``None``)."""
    try:
        shown = unit_properties(unit)
    except (OSError, subprocess.SubprocessError) as error:
        return Check(group, unit, False, f"cannot ask systemd: {error}")
    if shown.get("LoadState") != "loaded":
        return Check(group, unit, False, f"not installed here (LoadState={shown.get('LoadState')})")
    state = f"{shown.get('ActiveState')} ({shown.get('SubState')})"
    if shown.get("ActiveState") != "active":
        return Check(group, unit, False, f"{state}: journalctl -u {unit} -n 50")
    main_pid = int(shown.get("MainPID") or 0)
    detail = (
        f"{state} since {shown.get('ActiveEnterTimestamp') or '?'}, main pid {main_pid},"
        f" {shown.get('NRestarts', '?')} restarts"
    )
    if workers is None:
        return Check(group, unit, True, detail)
    found = worker_pids(main_pid)
    detail += f", {len(found)} of {workers} workers ({' '.join(map(str, found)) or 'none'})"
    return Check(group, unit, len(found) >= workers, detail)


def worker_pids(main_pid: int, proc: Path = Path("/proc")) -> list[int]:
    """The main process's children started by multiprocessing's spawn, as the API's
    workers are (read from ``/proc``: any cgroup layout, no privilege needed)."""
    workers = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            parent = int(stat.read_text().rpartition(")")[2].split()[1])
            if parent == main_pid and b"spawn_main" in (stat.parent / "cmdline").read_bytes():
                workers.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return sorted(workers)


# The database and the projections


def database_checks(settings: Settings) -> list[Check]:
    """The database line, the read database's (when there is one), and one line per
    projection (a rebuild's too, while there is one)."""
    where = describe(settings.conninfo)
    names = sorted([*PROJECTIONS, *(f"{name}:rebuild" for name in PROJECTIONS)])
    reading = (
        [] if settings.read_conninfo is None else [read_database_check(settings.read_conninfo)]
    )
    try:
        found = asyncio.run(database_status(settings.conninfo, names))
    except StoreUnavailable as error:
        return [
            Check("database", "database", False, f"{where} unreachable: {error}"),
            *reading,
            Check("projections", "projections", False, "unknown: the database is unreachable"),
        ]
    except StoreError as error:
        return [Check("database", "database", False, f"{where}: {error}"), *reading]
    return [database_line(where, found), *reading, *map(projection_check, found.projections)]


def read_database_check(conninfo: str) -> Check:
    """The server the queries read from (``CQRS_READ_DATABASE_URL``), as the API's read
    pool finds it: reachable, a standby or a primary (either may serve queries), and a
    schema this release reads."""
    where = describe(conninfo)
    try:
        found = asyncio.run(database_status(conninfo, ()))
    except StoreUnavailable as error:
        return Check("database", "read database", False, f"{where} unreachable: {error}")
    except StoreError as error:
        return Check("database", "read database", False, f"{where}: {error}")
    needed = latest_schema_version()
    role = "standby" if found.standby else "primary"
    detail = (
        f"{where} reachable ({found.server} answered), {role}, PostgreSQL {found.server_version},"
        f" schema version {found.schema_version} (this release needs {needed})"
    )
    if found.schema_version < needed:
        return Check("database", "read database", False, f"{detail}: not replayed the migration")
    return Check("database", "read database", True, f"{detail}; the queries read here")


def database_line(where: str, found: DatabaseStatus) -> Check:
    needed = latest_schema_version()
    role = "standby (in recovery): it takes no commands" if found.standby else "primary"
    detail = (
        f"{where} reachable, {role}, PostgreSQL {found.server_version},"
        f" schema version {found.schema_version} (this release needs {needed})"
    )
    ok = not found.standby and found.schema_version >= needed
    return Check("database", "database", ok, detail if ok else f"{detail}: cqrs-demo migrate")


def projection_check(status: ProjectionStatus) -> Check:
    """A projection is fine while it runs (or rebuilds) at most a minute behind."""
    checkpoint = status.checkpoint
    detail = (
        f"{checkpoint.state} at {checkpoint.position}, {status.events_behind} events"
        f" ({status.seconds_behind:.1f} s) behind, {checkpoint.events_applied} applied"
    )
    if checkpoint.state == "stopped":
        detail += (
            f"; stopped at event {checkpoint.failed_event_id} ({checkpoint.failed_event_type}):"
            f" {checkpoint.error} (cqrs-demo projections status)"
        )
        return Check("projections", status.projection, False, detail)
    return Check(
        "projections",
        status.projection,
        status.seconds_behind <= LAG_ATTENTION_SECONDS,
        detail,
    )


# Backups


@dataclass(frozen=True, slots=True)
class LastBackup:
    """The newest complete backup a backup tool reports: when it finished, and what it is."""

    finished: datetime
    description: str


def backups_check(last: LastBackup | None, *, now: datetime, configured: bool = False) -> Check:
    """Backups need attention until one is configured and its newest is younger than
    ``BACKUP_MAX_AGE``."""
    if not configured:
        return Check(
            "backups",
            "backups",
            False,
            "none configured (docs/operations.md, Backup and restore)",
        )
    if last is None:
        return Check("backups", "backups", False, "configured, but none made yet")
    age = now - last.finished
    detail = f"last {last.description} finished {last.finished:%Y-%m-%d %H:%M} UTC, {_age(age)} ago"
    if age > BACKUP_MAX_AGE:
        detail += f", over {_age(BACKUP_MAX_AGE)}: journalctl -u 'cqrs-demo-backup@*'"
    return Check("backups", "backups", age <= BACKUP_MAX_AGE, detail)


class BackupInfoError(ValueError):
    """What pgBackRest's ``info`` said is not what ``last_backup`` understands."""


def last_backup(info: str) -> LastBackup | None:
    """The newest backup (latest end) of the one stanza in ``info``, the JSON of
    ``pgbackrest --output=json info``; ``None`` when it holds none. Raises
    ``BackupInfoError`` for anything else than one stanza, or a stanza whose status is not
    ok (its message in the error)."""
    try:
        stanzas = json.loads(info)
        if not isinstance(stanzas, list) or len(stanzas) != 1:
            count = len(stanzas) if isinstance(stanzas, list) else "no list of"
            raise BackupInfoError(f"{count} stanzas, 1 expected")
        stanza = stanzas[0]
        status = stanza["status"]
        backups = stanza.get("backup") or []
        if status["code"] != 0 and not (status["code"] == 2 and not backups):
            raise BackupInfoError(
                f"stanza {stanza['name']}: status {status['code']}, {status['message']}"
            )
        if not backups:
            return None
        newest = max(backups, key=lambda backup: int(backup["timestamp"]["stop"]))
        finished = datetime.fromtimestamp(int(newest["timestamp"]["stop"]), UTC)
        return LastBackup(finished, f"{newest['type']} backup {newest['label']}")
    except BackupInfoError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise BackupInfoError(f"not pgBackRest's info: {type(error).__name__} {error}") from None


def backups_line(path: Path, *, now: datetime) -> Check:
    """The backups line from ``path`` (``BACKUP_INFO``): none configured while it does not
    exist, else its newest backup and that backup's age."""
    try:
        info = path.read_text()
    except FileNotFoundError:
        return Check(
            "backups",
            "backups",
            False,
            f"none configured on this host (no {path}; docs/operations.md, Backup and restore)",
        )
    except OSError as error:
        return Check("backups", "backups", False, f"cannot read {path}: {error.strerror}")
    try:
        return backups_check(last_backup(info), now=now, configured=True)
    except BackupInfoError as error:
        return Check("backups", "backups", False, f"{path}: {error}")


def _age(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


# The screen

_GREEN, _RED, _DIM, _RESET = "\x1b[32m", "\x1b[1;31m", "\x1b[2m", "\x1b[0m"


def use_colour(stream_is_terminal: bool, environ: dict[str, str] | None = None) -> bool:
    """Colour on a terminal, unless ``NO_COLOR`` is set or ``TERM`` is ``dumb``."""
    environ = dict(os.environ) if environ is None else environ
    return stream_is_terminal and "NO_COLOR" not in environ and environ.get("TERM") != "dumb"


def render(checks: Sequence[Check], *, colour: bool) -> str:
    """The screen: a line per check, then what needs attention (or that nothing does)."""
    width = max(len(check.name) for check in checks)
    lines = [f"cqrs-demo status, release {release_id()}"]
    for check in checks:
        mark, tint = (
            ("ignored", _DIM)
            if check.ignored
            else ("ok", _GREEN)
            if check.ok
            else ("ATTENTION", _RED)
        )
        label = f"{mark:9}"
        if colour:
            label = f"{tint}{label}{_RESET}"
        lines.append(f"{label} {check.name:{width}}  {check.detail}")
    attention = [check.name for check in checks if check.needs_attention]
    ignored = sum(check.ignored for check in checks)
    lines.append(
        f"{len(attention)} of {len(checks)} need attention: {', '.join(attention)}"
        if attention
        else "nothing needs attention" + (f" ({ignored} ignored)" if ignored else "")
    )
    return "\n".join(lines)
