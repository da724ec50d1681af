"""The ``cqrs-demo`` command: serve, project, migrate, check, status, projections, local run.

Exit codes: 0 success; 1 failure (database unreachable, schema behind, a worker died);
78 (EX_CONFIG) a bad or missing setting, which no restart can fix.
"""

import argparse
import asyncio
import os
import pwd
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from cqrs_demo.domain.projections import PROJECTIONS
from cqrs_demo.envfile import read_environment_file
from cqrs_demo.localdb import LocalPostgres, LocalPostgresError
from cqrs_demo.logs import configure_logging
from cqrs_demo.ports import ProjectionStatus
from cqrs_demo.release import release_id
from cqrs_demo.settings import ConfigError, database_conninfo, load_settings
from cqrs_demo.status import BACKUP_INFO
from cqrs_demo.store.conninfo import describe
from cqrs_demo.store.errors import MigrationChanged, SchemaNotCurrent, StoreUnavailable
from cqrs_demo.store.projections import (
    NotStoppedAtEvent,
    projection_status,
    skip_event,
)
from cqrs_demo.store.rebuild import RebuildRefused
from cqrs_demo.store.schema import Migrated, check_database, migrate
from cqrs_demo.store.sql import database_functions, latest_schema_version

EXIT_CONFIG = 78
STATUS_GROUPS = ("release", "service", "projector", "database", "projections", "backups")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cqrs-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cqrs-demo {release_id()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="run the command API (settings from CQRS_* variables)")
    commands.add_parser("migrate", help="apply the schema migrations (idempotent)")
    commands.add_parser("check", help="check settings, database and schema; exit 0 or 1")
    status = commands.add_parser(
        "status",
        help="the release, the units and workers, the database, the projections and their lag,"
        " the last backup, on one screen; exit 1 if anything needs attention",
    )
    status.add_argument(
        "--ignore",
        action="append",
        default=[],
        choices=STATUS_GROUPS,
        metavar="PART",
        help=f"show PART but let it not count for the exit code ({', '.join(STATUS_GROUPS)});"
        " repeatable",
    )
    status.add_argument(
        "--backup-info",
        type=Path,
        default=BACKUP_INFO,
        metavar="FILE",
        help="what `pgbackrest --output=json info` said, as the backup unit writes it after"
        f" each backup (default {BACKUP_INFO})",
    )
    config = commands.add_parser("config", help="check environment files before they are used")
    config_actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    config_check = config_actions.add_parser(
        "check",
        help="check the settings of environment files (later files win) as the service would"
        " read them, without the database; exit 0, or 78 naming the bad variable",
    )
    config_check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    local = commands.add_parser(
        "local", help="run the API and the projector on 127.0.0.1:8080 over a throwaway PostgreSQL"
    )
    local.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    token = commands.add_parser(
        "token", help="make a bearer token: prints it once, and the line for the tokens file"
    )
    token.add_argument("name", help="who the token is for (letters, digits, _ . @ -)")
    _add_projector_commands(commands)
    arguments = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = _COMMANDS[arguments.command]
    try:
        return run(arguments)
    except ConfigError as error:
        print(f"cqrs-demo: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except (
        StoreUnavailable,
        SchemaNotCurrent,
        MigrationChanged,
        LocalPostgresError,
        NotStoppedAtEvent,
        RebuildRefused,
        OSError,
    ) as error:
        print(f"cqrs-demo {arguments.command}: {error}", file=sys.stderr)
        return 1


def _serve(arguments: argparse.Namespace) -> int:
    from cqrs_demo.server import serve  # imports uvicorn: only for the command that serves

    settings = load_settings()
    configure_logging(settings.log_level)
    return serve(settings)


def _migrate(arguments: argparse.Namespace) -> int:
    for line in _describe(asyncio.run(migrate(database_conninfo(os.environ)))):
        print(line)
    return 0


def _describe(migrated: Migrated) -> list[str]:
    """One line per thing ``migrate`` did. Whatever changed the database starts with
    ``applied `` (the Ansible role reports the run as *changed* by that)."""
    lines = [f"applied {migration.name}" for migration in migrated.migrations]
    lines += [
        f"applied function {applied.function.name}: sha256 {applied.function.checksum[:12]},"
        f" was {'not recorded' if applied.replaced is None else applied.replaced[:12]}"
        for applied in migrated.functions
    ]
    lines += [
        f"kept function {newer.name}: applied by a release at schema version"
        f" {newer.schema_version}, this release is at {latest_schema_version()}"
        for newer in migrated.left_to_newer
    ]
    if not migrated.migrations and not migrated.functions:
        count = len(database_functions())
        lines.append(
            f"nothing to apply: schema at version {latest_schema_version()},"
            f" {count} functions as recorded"
        )
    return lines


def _check(arguments: argparse.Namespace) -> int:
    """The settings, the database and its schema, as the service checks them at start: and
    the read database (``CQRS_READ_DATABASE_URL``) too, when there is one."""
    settings = load_settings()
    version = asyncio.run(check_database(settings.conninfo))
    print(
        f"ok: {describe(settings.conninfo)} reachable, schema version {version} "
        f"(this release needs {latest_schema_version()})"
    )
    if settings.read_conninfo is not None:
        try:
            version = asyncio.run(check_database(settings.read_conninfo))
        except (StoreUnavailable, SchemaNotCurrent) as error:
            raise type(error)(f"CQRS_READ_DATABASE_URL: {error}") from None
        print(
            f"ok: queries read from {describe(settings.read_conninfo)}, reachable,"
            f" schema version {version}"
        )
    return 0


def _status(arguments: argparse.Namespace) -> int:
    from cqrs_demo.status import gather, render, use_colour

    checks = gather(load_settings(), ignore=arguments.ignore, backup_info=arguments.backup_info)
    print(render(checks, colour=use_colour(sys.stdout.isatty())))
    return 1 if any(check.needs_attention for check in checks) else 0


def _config(arguments: argparse.Namespace) -> int:
    environ: dict[str, str] = {}
    for path in arguments.files:
        environ.update(read_environment_file(path))
    names = ", ".join(str(path) for path in arguments.files)
    try:
        load_settings(environ)
    except ConfigError as error:
        raise ConfigError(f"{names}: {error}") from None
    print(f"ok: {names}: {len(environ)} variables, every setting valid")
    return 0


def _token(arguments: argparse.Namespace) -> int:
    from cqrs_demo.api.auth import new_token

    name = str(arguments.name)
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name):
        print("cqrs-demo token: NAME must be 1-64 letters, digits, _ . @ or -", file=sys.stderr)
        return 2
    token, digest = new_token()
    print(f"token (give it to the client; it is not stored): {token}")
    print(f"line for the tokens file (CQRS_TOKENS_FILE): {name} sha256:{digest}")
    return 0


def _local(arguments: argparse.Namespace) -> int:
    from cqrs_demo.server import serve

    with LocalPostgres() as database:
        database.create_database("cqrs_events")
        environ = {
            "CQRS_WORKERS": "1",
            **os.environ,
            "CQRS_DATABASE_URL": database.url("cqrs_events"),
            "CQRS_PORT": str(arguments.port),
        }
        for line in _describe(asyncio.run(migrate(database.url("cqrs_events")))):
            print(line, file=sys.stderr)
        settings = load_settings(environ)
        configure_logging(settings.log_level)
        print(f"throwaway PostgreSQL: psql {database.url('cqrs_events')}", file=sys.stderr)
        # The projector beside the API, as on a host: a process of its own, same settings.
        projector = subprocess.Popen([sys.executable, "-m", "cqrs_demo", "project"], env=environ)
        try:
            return serve(settings)
        finally:
            projector.terminate()
            projector.wait(timeout=20)


def _add_projector_commands(commands: "argparse._SubParsersAction[Any]") -> None:
    commands.add_parser("project", help="keep the read models up to date (the projector)")
    projections = commands.add_parser(
        "projections", help="the projections: status, skip an event, rebuild"
    )
    actions = projections.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser(
        "status", help="each projection's position, lag and state; exit 1 if one is stopped"
    )
    skip = actions.add_parser("skip", help="skip the event a stopped projection stopped at")
    skip.add_argument("name", choices=sorted(PROJECTIONS), help="the projection")
    skip.add_argument("--event", required=True, type=UUID, help="the event's id (see status)")
    skip.add_argument("--reason", required=True, help="why it is skipped (kept with the skip)")
    rebuild = actions.add_parser(
        "rebuild",
        help="rebuild a projection from the first event into new tables, then swap them in",
    )
    rebuild.add_argument("name", choices=sorted(PROJECTIONS), help="the projection")
    rebuild.add_argument(
        "--afresh", action="store_true", help="start over instead of resuming a rebuild"
    )
    rebuild.add_argument(
        "--drop", action="store_true", help="drop an interrupted rebuild instead of running one"
    )
    rebuild.add_argument(
        "--batch-size", type=int, default=20000, help="events per transaction (default 20000)"
    )


def _project(arguments: argparse.Namespace) -> int:
    from cqrs_demo.bootstrap import create_projector
    from cqrs_demo.projector.process import project

    settings = load_settings()
    configure_logging(settings.log_level)
    return project(create_projector(settings))


def _projections(arguments: argparse.Namespace) -> int:
    conninfo = database_conninfo(os.environ)
    if arguments.action == "skip":
        line = asyncio.run(
            skip_event(
                conninfo, arguments.name, arguments.event, reason=arguments.reason, by=_operator()
            )
        )
        print(line)
        return 0
    if arguments.action == "rebuild":
        return _rebuild(conninfo, arguments)
    names = sorted([*PROJECTIONS, *(f"{name}:rebuild" for name in PROJECTIONS)])
    statuses = asyncio.run(projection_status(conninfo, names))
    for line in _status_lines(statuses):
        print(line)
    return 1 if any(status.checkpoint.state == "stopped" for status in statuses) else 0


def _rebuild(conninfo: str, arguments: argparse.Namespace) -> int:
    """SIGINT or SIGTERM stops it within seconds, even with a server that answers nothing
    (``projector.stopping``); what it had committed is kept, to resume or drop."""
    from cqrs_demo.bootstrap import drop_rebuild, rebuild_projection
    from cqrs_demo.projector.rebuild import RebuildStopped
    from cqrs_demo.projector.stopping import Stopped

    name = str(arguments.name)
    if arguments.drop:
        try:
            asyncio.run(drop_rebuild(conninfo, name))
        except Stopped as stopped:
            print(f"{stopped}: the rebuild of {name} was not dropped", file=sys.stderr)
            return 128 + stopped.signum
        print(f"dropped the rebuild of {name} (its tables and checkpoint), if there was one")
        return 0
    if not 1 <= arguments.batch_size <= 100_000:
        print("cqrs-demo projections rebuild: --batch-size must be 1 to 100000", file=sys.stderr)
        return 2
    progress = _Progress(name)
    try:
        checkpoint = asyncio.run(
            rebuild_projection(
                conninfo,
                name,
                afresh=arguments.afresh,
                batch_size=arguments.batch_size,
                progress=progress,
            )
        )
    except Stopped as stopped:
        progress.end()
        print(
            f"interrupted ({stopped}): the rebuild of {name} is kept; run the same command to"
            " resume it, or with --drop to drop it",
            file=sys.stderr,
        )
        return 128 + stopped.signum
    except RebuildStopped as error:
        progress.end()
        print(f"cqrs-demo projections rebuild {name}: {error}", file=sys.stderr)
        return 1
    progress.end()
    print(
        f"swapped in: {name} rebuilt at position {checkpoint.position},"
        f" {checkpoint.events_applied} events applied, in {progress.seconds:.1f} s;"
        " the projector goes on from there"
    )
    return 0


class _Progress:
    """A rebuild's progress on standard error: one line redrawn on a terminal, else a line
    every 5 seconds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seconds = 0.0
        self._terminal = sys.stderr.isatty()
        self._printed = -5.0

    def __call__(self, applied: int, total: int, seconds: float) -> None:
        self.seconds = seconds
        if not self._terminal and seconds - self._printed < 5:
            return
        self._printed = seconds
        rate = applied / seconds if seconds > 0 else 0.0
        line = (
            f"rebuilding {self.name}: {applied:,} of {total:,} events"
            f" ({100 * applied // max(total, 1)}%), {rate:,.0f} events/s"
        )
        print(
            "\r" + line if self._terminal else line,
            end="" if self._terminal else "\n",
            file=sys.stderr,
            flush=True,
        )

    def end(self) -> None:
        if self._terminal and self._printed >= 0:
            print(file=sys.stderr)


def _operator() -> str:
    """Who runs this: the OS user, and the one behind sudo if any."""
    user = pwd.getpwuid(os.getuid()).pw_name
    sudo_user = os.environ.get("SUDO_USER")
    return f"{user} (sudo by {sudo_user})" if sudo_user and sudo_user != user else user


def _status_lines(statuses: list[ProjectionStatus]) -> list[str]:
    lines = [
        f"{'projection':28} {'state':10} {'position':>22} {'head':>22} {'behind':>8}"
        f" {'seconds':>8} {'applied':>10}"
    ]
    for status in statuses:
        checkpoint = status.checkpoint
        lines.append(
            f"{status.projection:28} {checkpoint.state:10} {checkpoint.position!s:>22}"
            f" {status.head!s:>22} {status.events_behind:>8} {status.seconds_behind:>8.1f}"
            f" {checkpoint.events_applied:>10}"
        )
        if checkpoint.state == "stopped":
            lines.append(
                f"  stopped at event {checkpoint.failed_event_id}"
                f" ({checkpoint.failed_event_type}): {checkpoint.error}"
            )
            name, _, rebuilding = status.projection.partition(":")
            lines.append(
                f"  to retry it: cqrs-demo projections rebuild {name}; to drop it: ... --drop"
                if rebuilding
                else f"  to go on after it: cqrs-demo projections skip {name}"
                f" --event {checkpoint.failed_event_id} --reason '...'"
            )
    return lines


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "project": _project,
    "projections": _projections,
    "serve": _serve,
    "migrate": _migrate,
    "check": _check,
    "config": _config,
    "status": _status,
    "local": _local,
    "token": _token,
}
