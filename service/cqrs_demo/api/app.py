"""The Starlette application: routes, the error table, the access log; commands first."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from functools import wraps

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from cqrs_demo.api.access_log import AccessLog, log_request
from cqrs_demo.api.auth import BearerTokens
from cqrs_demo.api.body import BodyRules
from cqrs_demo.api.commands import COMMANDS, CommandEndpoint
from cqrs_demo.api.feed import PATH as FEED_PATH
from cqrs_demo.api.feed import FeedEndpoint, never
from cqrs_demo.api.health import healthz, readyz_endpoint
from cqrs_demo.api.openapi import openapi_document
from cqrs_demo.api.parameters import register_text
from cqrs_demo.api.problems import answer_if_stopping, as_problem, problem_response
from cqrs_demo.api.projections import PATH as PROJECTIONS_PATH
from cqrs_demo.api.projections import ProjectionsEndpoint
from cqrs_demo.api.queries import QUERY_PATHS, QueryEndpoints, route_for
from cqrs_demo.api.streams import PATH as STREAM_PATH
from cqrs_demo.api.streams import StreamEndpoint
from cqrs_demo.ports import EventStore, OrderQueries

Endpoint = Callable[[Request], Awaitable[Response]]
Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


def build_app(
    *,
    store: EventStore,
    check_ready: Callable[[], Awaitable[int]],
    tokens: BearerTokens,
    body: BodyRules,
    lifespan: Lifespan | None = None,
    stopping: Callable[[], bool] = never,
    read_models: OrderQueries | None = None,
) -> "HotPathsFirst":
    """The API over ``store``: every command of ``COMMANDS``, the stream read, the feed,
    the probes and the OpenAPI document; ``check_ready`` backs ``/readyz``; ``stopping``
    tells when the worker stops (long polls of the feed then answer at once). With
    ``read_models``, the queries too (``api/queries.py``); without, as the command
    benchmarks build it, none."""
    register_text()
    commands = {spec.path: CommandEndpoint(spec, store, tokens, body) for spec in COMMANDS}
    query_routes = [] if read_models is None else _query_routes(read_models, tokens)
    read_stream = StreamEndpoint(store, tokens)
    read_feed = FeedEndpoint(store, tokens, stopping=stopping)
    routes = [
        *(Route(path, endpoint, methods=["POST"]) for path, endpoint in commands.items()),
        Route(STREAM_PATH, answering_problems(read_stream.__call__), methods=["GET"]),
        Route(FEED_PATH, answering_problems(read_feed.__call__), methods=["GET"]),
        *query_routes,
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", answering_problems(readyz_endpoint(check_ready)), methods=["GET"]),
        Route("/openapi.json", _openapi_endpoint(tokens), methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(AccessLog, stopping=stopping)],
        exception_handlers={HTTPException: _http_exception},
        lifespan=lifespan,
    )
    hot_queries = {route.path: route for route in query_routes if route.path in QUERY_PATHS}
    return HotPathsFirst(app, commands, hot_queries, stopping=stopping)


class HotPathsFirst:
    """The outermost ASGI app: a POST to a command's path goes straight to its endpoint,
    and a GET of a query's path straight to the query; each answers every error itself (the
    problem table), and is logged here. Everything else (other paths and methods, lifespan)
    goes to the Starlette app, whose routes list the commands and the queries too.

    Starlette's two error middlewares, its router and the access log's ``send`` wrapper
    were a fifth of a worker's Python time per command, and as much per query
    (``docs/performance.md``).

    A command or query still running when the worker's stop has drained for as long as it
    may (``stopping()`` true, uvicorn cancels what is left) is answered 503
    ``urn:cqrs-demo:service-stopping`` and logged as such, instead of uvicorn's 500 and a
    traceback per request (a database that answers nothing held them all)."""

    def __init__(
        self,
        app: Starlette,
        commands: Mapping[str, CommandEndpoint],
        queries: Mapping[str, Route] | None = None,
        *,
        stopping: Callable[[], bool] = never,
    ) -> None:
        self.app = app
        self._commands = dict(commands)
        self._queries = dict(queries or {})
        self._stopping = stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["method"] == "POST":
                command = self._commands.get(scope["path"])
                if command is not None:
                    started = time.perf_counter()
                    status = 500
                    try:
                        status = await command.answer(scope, receive, send)
                    except asyncio.CancelledError:
                        status = await answer_if_stopping(self._stopping, scope, receive, send)
                    finally:
                        log_request(scope, status, time.perf_counter() - started)
                    return
            elif scope["method"] == "GET" and self._queries:
                query = self._queries.get(route_for(scope["path"]) or "")
                if query is not None:
                    await _answer_query(query, scope, receive, send, self._stopping)
                    return
        await self.app(scope, receive, send)


async def _answer_query(
    route: Route, scope: Scope, receive: Receive, send: Send, stopping: Callable[[], bool]
) -> None:
    """Answer a GET with ``route``'s endpoint (which answers every error as a problem), as
    Starlette's router would hand it over (``scope["route"]``, which the metrics read); log
    it. Cut short by the worker's stop: a 503 (``HotPathsFirst``)."""
    started = time.perf_counter()
    scope.setdefault("state", {})
    scope["route"] = route
    status = 500
    try:
        response = await route.endpoint(Request(scope, receive))
        status = response.status_code
        await response(scope, receive, send)
    except asyncio.CancelledError:
        status = await answer_if_stopping(stopping, scope, receive, send)
    finally:
        log_request(scope, status, time.perf_counter() - started)


def answering_problems(endpoint: Endpoint) -> Endpoint:
    """Every error the endpoint raises becomes a problem+json answer (see ``as_problem``)."""

    @wraps(endpoint)
    async def answer(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as error:
            return problem_response(as_problem(error))

    return answer


def _query_routes(read_models: OrderQueries, tokens: BearerTokens) -> list[Route]:
    queries = QueryEndpoints(read_models, tokens)
    projections = ProjectionsEndpoint(read_models, tokens)
    return [
        Route(PROJECTIONS_PATH, answering_problems(projections.__call__), methods=["GET"]),
        *(
            Route(path, answering_problems(endpoint), methods=["GET"])
            for path, endpoint in queries.endpoints().items()
        ),
    ]


def _openapi_endpoint(tokens: BearerTokens) -> Endpoint:
    document = orjson.dumps(openapi_document(COMMANDS, bearer_tokens=tokens.enabled))

    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/json")

    return openapi


async def _http_exception(request: Request, error: Exception) -> Response:
    return problem_response(as_problem(error))
