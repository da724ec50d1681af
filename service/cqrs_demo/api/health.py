"""Probes: ``/healthz`` (the process answers) and ``/readyz`` (it can take commands)."""

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cqrs_demo.release import release_id

Endpoint = Callable[[Request], Awaitable[Response]]


async def healthz(request: Request) -> Response:
    """``{"status": "ok", "release": <release id>}``: the process answers, and which build it
    runs (read once per process, so the probe stays as cheap as before)."""
    return JSONResponse({"status": "ok", "release": release_id()})


def readyz_endpoint(check_ready: Callable[[], Awaitable[int]]) -> Endpoint:
    """Ready when ``check_ready`` returns the schema version: pool open, database reachable,
    schema current. Otherwise the store's error becomes a 503 in the problem table."""

    async def readyz(request: Request) -> Response:
        schema_version = await check_ready()
        return JSONResponse({"status": "ready", "schema_version": schema_version})

    return readyz
