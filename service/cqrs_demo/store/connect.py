"""Connecting to one server of several at once, so a server that answers nothing does not
hold up the one that takes the connection.

libpq (and psycopg after it) tries the servers of a multi-host string one after the other,
each for up to ``connect_timeout`` (at least 2 s). After a failover whose old primary lost
power, that host answers nothing: every new connection through a list naming it before the
new primary waited those 2 s first, and the pools' first connection to the new primary
came up to 2 s after it accepted writes. ``RacingConnection.connect`` tries every server
of such a list at once, each with the list's ``target_session_attrs``, and keeps the first
that takes the session; a string naming one server is connected to as psycopg does,
unchanged.
"""

import asyncio
from typing import Any, Self

import psycopg
import psycopg.conninfo
from psycopg import AsyncConnection

from cqrs_demo.store.conninfo import server_attempts

# Once every server that answered has refused the session (each a standby, for a
# read-write list), the servers still silent get this long more before the attempt fails:
# a live server answers within milliseconds, a host without power never does, and the
# pool tries again at the next request rather than wait out its connect_timeout.
SILENT_GRACE_SECONDS = 0.5


class RacingConnection(AsyncConnection[tuple[object, ...]]):
    """An ``AsyncConnection`` whose ``connect`` races the servers of a multi-host string
    (module docstring); the pools use it as their ``connection_class``."""

    @classmethod
    async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        """A connection to a server of ``conninfo`` that has the session role it asks for.

        ``prefer-standby``: a standby if any answers as one, else any server. Raises
        ``psycopg.OperationalError`` naming every server's failure when none takes it."""
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
        attempts = server_attempts({key: str(value) for key, value in params.items()})
        if len(attempts) < 2:
            return await super().connect(conninfo, **kwargs)
        role = str(params.get("target_session_attrs") or "any")
        if role != "prefer-standby":
            return await cls._race(attempts, role, kwargs)
        try:
            return await cls._race(attempts, "standby", kwargs)
        except psycopg.OperationalError:
            return await cls._race(attempts, "any", kwargs)

    @classmethod
    async def _race(cls, attempts: list[dict[str, str]], role: str, kwargs: dict[str, Any]) -> Self:
        """The first of ``attempts`` (one server each) to connect with ``role``; the others
        are cancelled, or closed if they connected too."""
        strings = [
            psycopg.conninfo.make_conninfo(**{**attempt, "target_session_attrs": role})
            for attempt in attempts
        ]
        tasks = {
            asyncio.ensure_future(super(RacingConnection, cls).connect(string, **kwargs)): number
            for number, string in enumerate(strings)
        }
        pending = set(tasks)
        failures: dict[int, str] = {}
        winner: Self | None = None
        try:
            while pending and winner is None:
                refused_all_answered = bool(failures) and len(failures) + len(pending) == len(
                    attempts
                )
                done, pending = await asyncio.wait(
                    pending,
                    timeout=SILENT_GRACE_SECONDS if refused_all_answered else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:  # the rest stayed silent through the grace
                    for task in pending:
                        failures[tasks[task]] = (
                            f"no answer within {SILENT_GRACE_SECONDS} s after the others refused"
                        )
                    break
                for task in done:
                    error = task.exception()
                    if error is None and winner is None:
                        winner = task.result()
                    elif error is None:
                        await task.result().close()
                    else:
                        failures[tasks[task]] = str(error).splitlines()[0] if str(error) else ""
        finally:
            for task in pending:
                task.cancel()
            # Cancelled or failed ones come back as exceptions; any that connected meanwhile
            # is closed.
            for late in await asyncio.gather(*pending, return_exceptions=True):
                if isinstance(late, AsyncConnection):
                    await late.close()
        if winner is not None:
            return winner
        lines = [f"- {_server(attempts[i])}: {failures[i] or 'failed'}" for i in sorted(failures)]
        raise psycopg.OperationalError(
            f"none of {len(attempts)} servers took a {role} session:\n" + "\n".join(lines)
        )


def _server(attempt: dict[str, str]) -> str:
    host = attempt.get("host") or attempt.get("hostaddr") or "localhost"
    return f"{host}:{attempt.get('port') or 5432}"
