"""The ``cqrs-demo`` command: serve, migrate, check, and a local run on a throwaway database.

Exit codes: 0 success; 1 failure (database unreachable, schema behind, a worker died);
78 (EX_CONFIG) a bad or missing setting, which no restart can fix.
"""

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Callable

from cqrs_demo import __version__
from cqrs_demo.localdb import LocalPostgres, LocalPostgresError
from cqrs_demo.logs import configure_logging
from cqrs_demo.settings import ConfigError, database_conninfo, load_settings
from cqrs_demo.store.conninfo import describe
from cqrs_demo.store.errors import MigrationChanged, SchemaNotCurrent, StoreUnavailable
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
        "local", help="run the API on 127.0.0.1:8080 over a throwaway PostgreSQL"
    )
    local.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    token = commands.add_parser(
        "token", help="make a bearer token: prints it once, and the line for the tokens file"
    )
    token.add_argument("name", help="who the token is for (letters, digits, _ . @ -)")
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
        return serve(settings)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": _serve,
    "migrate": _migrate,
    "check": _check,
    "local": _local,
    "token": _token,
}
