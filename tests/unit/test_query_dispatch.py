"""``HotPathsFirst`` hands a GET to the query route that Starlette's router would pick, for
every path, odd ones included: it passes the router, so it must agree with it."""

from typing import Any

import pytest
from starlette.responses import Response
from starlette.routing import Match, Route

from cqrs_demo.api.parameters import register_text
from cqrs_demo.api.queries import QUERY_PATHS, route_for

PATHS = [
    "/api/queries/orders/o-1",
    "/api/queries/orders/",
    "/api/queries/orders",
    "/api/queries/orders/a/b/summary",
    "/api/queries/orders/line\nbreak",
    "/api/queries/users/u-1/orders",
    "/api/queries/users/u-1/summary",
    "/api/queries/users//orders",
    "/api/queries/users/orders",
    "/api/queries/users/summary",
    "/api/queries/users/a/summary/orders",
    "/api/queries/users/a/orders/summary",
    "/api/queries/users/line\nbreak/summary",
    "/api/queries/users/u-1",
    "/api/queries/users/u-1/orders/",
    "/api/queries/user/u-1/orders",
    "/api/queries/",
    "/api/events",
]


@pytest.mark.parametrize("path", PATHS)
def test_a_get_goes_to_the_query_route_the_router_would_pick(path: str) -> None:
    register_text()
    routes = [Route(route_path, Response, methods=["GET"]) for route_path in QUERY_PATHS]
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": path, "root_path": ""}
    by_router = next(
        (route.path for route in routes if route.matches(scope)[0] == Match.FULL), None
    )
    assert route_for(path) == by_router
