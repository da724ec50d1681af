"""Access to the ``.sql`` files shipped beside this module."""

import re
from dataclasses import dataclass
from functools import cache
from hashlib import sha256
from importlib.resources import files

# The comment lines a query file starts with: they are for its reader. Sent, they would be
# all that pg_stat_activity shows of a running statement (it keeps its first kilobyte).
_HEADER_COMMENT = re.compile(rb"\A(?:[ \t]*(?:--[^\n]*)?\n)*")


@cache
def query(name: str) -> bytes:
    """The statement in ``queries/<name>.sql`` without its header comment, as bytes ready
    for ``execute``."""
    text = files(__package__).joinpath("queries", f"{name}.sql").read_bytes()
    return _HEADER_COMMENT.sub(b"", text, count=1)


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered migration file: ``NNNN_name.sql``."""

    version: int
    name: str
    sql: bytes

    @property
    def checksum(self) -> str:
        return sha256(self.sql).hexdigest()


@cache
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped with this release, in order; numbered 1..n without gaps."""
    found = []
    for entry in files(__package__).joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, _ = entry.name.partition("_")
            found.append(
                Migration(int(number), entry.name.removesuffix(".sql"), entry.read_bytes())
            )
    found.sort(key=lambda migration: migration.version)
    if [migration.version for migration in found] != list(range(1, len(found) + 1)):
        raise RuntimeError("migrations must be numbered 1..n without gaps")
    return tuple(found)


def latest_schema_version() -> int:
    return migrations()[-1].version


@dataclass(frozen=True, slots=True)
class DatabaseFunction:
    """One function file, ``functions/<name>.sql``: a ``CREATE OR REPLACE FUNCTION <name>``,
    run again by ``migrate`` whenever its text changes."""

    name: str
    sql: bytes

    @property
    def checksum(self) -> str:
        return sha256(self.sql).hexdigest()


@cache
def database_functions() -> tuple[DatabaseFunction, ...]:
    """Every function file shipped with this release, by name."""
    found = [
        DatabaseFunction(entry.name.removesuffix(".sql"), entry.read_bytes())
        for entry in files(__package__).joinpath("functions").iterdir()
        if entry.name.endswith(".sql")
    ]
    return tuple(sorted(found, key=lambda function: function.name))
