"""``HotPathsFirst`` hands a GET to the query that Starlette's routes would pick, for every
path, odd ones included: it passes the router, so it must agree with it."""

from typing import Any, cast

import pytest
from starlette.routing import Match, Route

from cqrs_demo.api.auth import BearerTokens
from cqrs_demo.api.parameters import register_text
from cqrs_demo.api.queries import ORDER_PATH, USER_ORDERS_PATH, USER_SUMMARY_PATH, QueryEndpoints
from cqrs_demo.ports import OrderQueries

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
def test_a_get_goes_to_the_query_the_routes_would_pick(path: str) -> None:
    register_text()
    queries = QueryEndpoints(cast(OrderQueries, object()), BearerTokens([]))
    routes = [
        Route(ORDER_PATH, queries.order, methods=["GET"]),
        Route(USER_ORDERS_PATH, queries.user_orders, methods=["GET"]),
        Route(USER_SUMMARY_PATH, queries.user_summary, methods=["GET"]),
    ]
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": path, "root_path": ""}
    by_routes = next(
        (route.endpoint for route in routes if route.matches(scope)[0] == Match.FULL), None
    )
    assert queries.endpoint_for(path) == by_routes
