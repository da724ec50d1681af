"""One statement run on libpq directly: prepared on a connection the first time it runs there.

psycopg's cursor layer (query conversion, adaptation, its prepared-statement cache, result
loading) and its generic wait cost 25 to 40 µs of client CPU per round trip, more than libpq
and the socket themselves (docs/performance.md). That is paid once per batch, and so once
per command for a lone client. For the statement on every command's path, this module
sends the prepared statement with ``PGconn.send_query_prepared`` (``Connection.pgconn``,
psycopg's documented low-level interface), waits on the socket with one future, and hands
back the rows as text. A failed statement raises psycopg's own exception for it
(``psycopg.errors.error_from_result``), so ``Database.connection`` translates it as any
other. Parameters and results are in text format (a parameter holding a NUL byte is refused
before it is sent, as psycopg refuses one).
"""

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import pq
from psycopg.errors import error_from_result

from cqrs_demo.store.pool import Connection

Row = tuple[bytes | None, ...]

_UNKNOWN_STATEMENT = b"26000"  # invalid_sql_statement_name: not prepared on this connection
_PLACEHOLDER = re.compile(rb"%\((\w+)\)s|%%")


@dataclass(frozen=True, slots=True)
class PreparedStatement:
    """``sql`` (with ``$1``, ``$2``... placeholders), prepared as ``name`` on each connection
    where it runs: a connection that does not know it yet (new, or reset by the server)
    prepares it and runs it again."""

    name: bytes
    sql: bytes

    async def run(self, conn: Connection, params: Sequence[bytes | None]) -> list[Row]:
        """The rows of the statement run with ``params``, each value as text or ``None``.
        A value holding a NUL byte raises ``psycopg.DataError``, as psycopg does: libpq
        sends text values as C strings, which would end at it, and PostgreSQL's text holds
        none."""
        if any(value is not None and b"\x00" in value for value in params):
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        pgconn = conn.pgconn
        pgconn.send_query_prepared(self.name, params)
        results = await _round_trip(pgconn)
        if _failed(results, _UNKNOWN_STATEMENT):
            pgconn.send_prepare(self.name, self.sql)
            _check(await _round_trip(pgconn), conn)
            pgconn.send_query_prepared(self.name, params)
            results = await _round_trip(pgconn)
        _check(results, conn)
        (result,) = results
        columns = range(result.nfields)
        return [
            tuple(result.get_value(row, column) for column in columns)
            for row in range(result.ntuples)
        ]


async def _round_trip(pgconn: pq.abc.PGconn) -> list[pq.abc.PGresult]:
    """Every result of the command just sent on ``pgconn``, once the server has answered
    it whole (the connection is idle again). A wait cut short (cancelled) closes the
    connection: its statement's outcome is unknown, and the pool replaces it."""
    try:
        while pgconn.flush():  # the socket took part of the command: wait, then send more
            await _ready(pgconn, writing=True)
            pgconn.consume_input()
        results: list[pq.abc.PGresult] = []
        while True:
            while not pgconn.is_busy():
                result = pgconn.get_result()
                if result is None:
                    return results
                results.append(result)
            await _ready(pgconn, writing=False)
            pgconn.consume_input()
    except psycopg.Error:
        raise  # the connection is broken, and psycopg knows it
    except BaseException:
        pgconn.finish()
        raise


async def _ready(pgconn: pq.abc.PGconn, *, writing: bool) -> None:
    """Until the connection's socket can be read (or, with ``writing``, read or written)."""
    loop = asyncio.get_running_loop()
    fileno = pgconn.socket
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fileno, wake)
    if writing:
        loop.add_writer(fileno, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fileno)
        if writing:
            loop.remove_writer(fileno)


def _failed(results: list[pq.abc.PGresult], sqlstate: bytes) -> bool:
    return any(
        result.status == pq.ExecStatus.FATAL_ERROR
        and result.error_field(pq.DiagnosticField.SQLSTATE) == sqlstate
        for result in results
    )


def _check(results: list[pq.abc.PGresult], conn: Connection) -> None:
    """Raise psycopg's exception for the first failed result, if any."""
    for result in results:
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise error_from_result(result, encoding=conn.info.encoding)
        if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
            status = pq.ExecStatus(result.status).name
            raise psycopg.InterfaceError(f"unexpected result: {status}")


def positional(sql: bytes, names: Sequence[str]) -> bytes:
    """``sql`` written for psycopg (``%(name)s`` placeholders, ``%%`` for ``%``) as libpq
    takes it: each ``%(name)s`` becomes ``$n``, ``n`` the place of ``name`` in ``names``
    (from 1). Raises ``ValueError`` naming a placeholder not in ``names``, or a name that
    has no placeholder."""
    numbers = {name.encode(): b"$%d" % number for number, name in enumerate(names, start=1)}
    used: set[bytes] = set()

    def replace(match: re.Match[bytes]) -> bytes:
        name = match.group(1)
        if name is None:
            return b"%"
        if name not in numbers:
            raise ValueError(f"placeholder {name.decode()!r} is not among {list(names)}")
        used.add(name)
        return numbers[name]

    converted = _PLACEHOLDER.sub(replace, sql)
    if unused := [name for name in names if name.encode() not in used]:
        raise ValueError(f"no placeholder for {unused}")
    return converted
