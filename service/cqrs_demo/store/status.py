"""What ``cqrs-demo status`` asks the database."""

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from cqrs_demo.ports import ProjectionStatus
from cqrs_demo.store.errors import StoreUnavailable
from cqrs_demo.store.projections import projection_status
from cqrs_demo.store.schema import schema_version
from cqrs_demo.store.sql import latest_schema_version, query


@dataclass(frozen=True, slots=True)
class DatabaseStatus:
    """The server's role and version, the schema version, and the projections' status
    (none while the schema is behind this release); ``server`` is the host and port that
    answered (of a URL naming several)."""

    standby: bool
    server_version: str
    schema_version: int
    projections: list[ProjectionStatus]
    server: str = ""


async def database_status(conninfo: str, projections: Sequence[str]) -> DatabaseStatus:
    """Connect (within 10 s), read the status (of ``projections``: none for a server that
    only serves queries), close. Raises ``StoreUnavailable`` (its
    message one line) when the database cannot be reached, ``StoreError`` on any other
    failure."""
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as error:
        raise StoreUnavailable(" ".join(str(error).split())) from error
    async with conn:
        cursor = await conn.execute(query("server_role"))
        row = await cursor.fetchone()
        assert row is not None
        version = await schema_version(conn)
        server = f"{conn.info.host}:{conn.info.port}"
    # Behind this release, the projections' tables may not be there yet.
    current = version >= latest_schema_version()
    statuses = await projection_status(conninfo, projections) if current and projections else []
    return DatabaseStatus(bool(row[0]), str(row[1]), version, statuses, server)
