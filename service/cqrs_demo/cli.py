"""The ``cqrs-demo`` command: serve, project, migrate, check, projections, and a local run.

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
from typing import Any
from uuid import UUID

from cqrs_demo import __version__
from cqrs_demo.domain.projections import PROJECTIONS
from cqrs_demo.localdb import LocalPostgres, LocalPostgresError
from cqrs_demo.logs import configure_logging
from cqrs_demo.settings import ConfigError, database_conninfo, load_settings
from cqrs_demo.store.conninfo import describe
from cqrs_demo.store.errors import MigrationChanged, SchemaNotCurrent, StoreUnavailable
from cqrs_demo.store.projections import (
    NotStoppedAtEvent,
    ProjectionStatus,
    projection_status,
    skip_event,
)
from cqrs_demo.store.schema import Migrated, check_database, migrate
from cqrs_demo.store.sql import database_functions, latest_schema_version

EXIT_CONFIG = 78


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cqrs-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cqrs-demo {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="run the command API (settings from CQRS_* variables)")
    commands.add_parser("migrate", help="apply the schema migrations (idempotent)")
    commands.add_parser("check", help="check settings, database and schema; exit 0 or 1")
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
    settings = load_settings()
    version = asyncio.run(check_database(settings.conninfo))
    print(
        f"ok: {describe(settings.conninfo)} reachable, schema version {version} "
        f"(this release needs {latest_schema_version()})"
    )
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
        "projections", help="the projections: status, skip an event a projection stopped at"
    )
    actions = projections.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser(
        "status", help="each projection's position, lag and state; exit 1 if one is stopped"
    )
    skip = actions.add_parser("skip", help="skip the event a stopped projection stopped at")
    skip.add_argument("name", choices=sorted(PROJECTIONS), help="the projection")
    skip.add_argument("--event", required=True, type=UUID, help="the event's id (see status)")
    skip.add_argument("--reason", required=True, help="why it is skipped (kept with the skip)")


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
    statuses = asyncio.run(projection_status(conninfo, sorted(PROJECTIONS)))
    for line in _status_lines(statuses):
        print(line)
    return 1 if any(status.checkpoint.state == "stopped" for status in statuses) else 0


def _operator() -> str:
    """Who runs this: the OS user, and the one behind sudo if any."""
    user = pwd.getpwuid(os.getuid()).pw_name
    sudo_user = os.environ.get("SUDO_USER")
    return f"{user} (sudo by {sudo_user})" if sudo_user and sudo_user != user else user


def _status_lines(statuses: list[ProjectionStatus]) -> list[str]:
    lines = [
        f"{'projection':22} {'state':8} {'position':>22} {'head':>22} {'behind':>8}"
        f" {'seconds':>8} {'applied':>10}"
    ]
    for status in statuses:
        checkpoint = status.checkpoint
        lines.append(
            f"{status.projection:22} {checkpoint.state:8} {checkpoint.position!s:>22}"
            f" {status.head!s:>22} {status.events_behind:>8} {status.seconds_behind:>8.1f}"
            f" {checkpoint.events_applied:>10}"
        )
        if checkpoint.state == "stopped":
            lines.append(
                f"  stopped at event {checkpoint.failed_event_id}"
                f" ({checkpoint.failed_event_type}): {checkpoint.error}"
            )
            lines.append(
                f"  to go on after it: cqrs-demo projections skip {status.projection}"
                f" --event {checkpoint.failed_event_id} --reason '...'"
            )
    return lines


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "project": _project,
    "projections": _projections,
    "serve": _serve,
    "migrate": _migrate,
    "check": _check,
    "local": _local,
    "token": _token,
}
