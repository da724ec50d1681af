"""Metrics without I/O: the tally, its move into prometheus_client, the refusal reasons,
the route templates, a projection's gauges."""

from uuid import uuid4

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from cqrs_demo.api.access_log import UNMATCHED_ROUTE, route_template
from cqrs_demo.api.commands import refusal_reason
from cqrs_demo.api.problems import Problem, as_problem
from cqrs_demo.domain.errors import (
    ExpectedVersionMismatch,
    FieldError,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidCommand,
    OrderNotFound,
)
from cqrs_demo.metrics.export import add_observations, projection_values
from cqrs_demo.metrics.tally import BATCH_BOUNDS, SECONDS_BOUNDS, Tally
from cqrs_demo.ports import Checkpoint, Position, ProjectionStatus
from cqrs_demo.store.errors import StoreUnavailable

SECONDS = [0.0004, 0.001, 0.0011, 0.003, 0.003, 0.2, 4.0, 12.0, 31.5]


def test_a_value_on_a_bound_is_counted_in_that_bucket_as_prometheus_does() -> None:
    tally = Tally()
    tally.request("/r", 202, 0.001)
    tally.request("/r", 202, 0.0010001)
    tally.request("/r", 202, 99.0)
    histogram = tally.take().requests["/r", 202]
    assert histogram.buckets[0] == 1
    assert histogram.buckets[1] == 1
    assert histogram.buckets[len(SECONDS_BOUNDS)] == 1
    assert histogram.count == 3


def test_take_hands_over_the_counts_and_starts_again_from_zero() -> None:
    tally = Tally()
    tally.request("/a", 202, 0.002)
    tally.request("/a", 409, 0.002)
    tally.refused("conflict")
    tally.refused("conflict")
    tally.written(3, 2)
    tally.pruned(7)
    counts = tally.take()
    assert {key: h.count for key, h in counts.requests.items()} == {("/a", 202): 1, ("/a", 409): 1}
    assert counts.refused == {"conflict": 2}
    assert (counts.events_appended, counts.keys_pruned) == (2, 7)
    assert counts.batches.count == 1
    assert counts.batches.buckets[BATCH_BOUNDS.index(4.0)] == 1
    assert not tally.take()


def test_bulk_added_observations_expose_exactly_what_observe_gives() -> None:
    """``add_observations`` uses prometheus_client's internals: a release that changes them
    fails here, not in production."""
    observed_registry, added_registry = CollectorRegistry(), CollectorRegistry()
    observed = Histogram("t", "t", ["route"], buckets=SECONDS_BOUNDS, registry=observed_registry)
    added = Histogram("t", "t", ["route"], buckets=SECONDS_BOUNDS, registry=added_registry)
    tally = Tally()
    for seconds in SECONDS:
        observed.labels(route="/r").observe(seconds)
        tally.request("/r", 202, seconds)
    add_observations(added.labels(route="/r"), tally.take().requests["/r", 202])
    exposition = _without_created(generate_latest(added_registry))
    assert exposition == _without_created(generate_latest(observed_registry))
    assert 't_count{route="/r"} 9.0' in exposition
    assert 't_bucket{le="0.001",route="/r"} 2.0' in exposition


def _without_created(exposition: bytes) -> list[str]:
    """The samples but ``_created`` (when each histogram was made: the two differ)."""
    return [line for line in exposition.decode().splitlines() if "_created" not in line]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (InvalidCommand([FieldError("amount", "amount must be positive")]), "validation"),
        (Problem(400, "If-Match must be one version"), "validation"),
        (Problem(413, "body too large"), "validation"),
        (Problem(401, "a bearer token is required"), "unauthorized"),
        (ExpectedVersionMismatch("user-1", 3, 4), "conflict"),
        (IdempotencyKeyReused("k"), "idempotency"),
        (IdempotencyKeyInFlight("k"), "idempotency"),
        (OrderNotFound("o", "u"), "decision"),
        (StoreUnavailable("down"), None),
    ],
)
def test_every_refusal_has_its_reason_and_a_failure_none(
    error: Exception, reason: str | None
) -> None:
    assert refusal_reason(as_problem(error)) == reason


class _Route:
    path = "/api/orders/{order_id}"


@pytest.mark.parametrize(
    ("scope", "template"),
    [
        ({"path": "/api/orders/0193a", "route": _Route()}, "/api/orders/{order_id}"),
        ({"path": "/api/commands/order/create"}, "/api/commands/order/create"),
        ({"path": f"/no/such/{uuid4()}"}, UNMATCHED_ROUTE),
    ],
)
def test_a_request_is_counted_under_its_route_template_never_its_path(
    scope: dict[str, object], template: str
) -> None:
    assert route_template(scope) == template


def test_a_projections_gauges() -> None:
    checkpoint = Checkpoint(Position(812, 40_001), 40_001, "stopped", "bad", uuid4(), "X", 0)
    status = ProjectionStatus("orders", checkpoint, Position(815, 40_010), 9, 2.5)
    assert projection_values(status) == {
        "position_transaction": 812.0,
        "position_event": 40001.0,
        "events_applied": 40001.0,
        "events_behind": 9.0,
        "seconds_behind": 2.5,
        "stopped": 1.0,
    }
