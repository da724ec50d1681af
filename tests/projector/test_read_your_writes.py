"""The whole read side at once: a real service and a real projector on one database. A
command's 202 position, given to a query as min_position, always shows that command."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cqrs_demo.localdb import LocalPostgres
from tests.projector.support import ProjectorProcess, running_projector
from tests.support import Service, new_database, running_service

CREATE = "/api/commands/order/create"
CANCEL = "/api/commands/order/cancel"


@pytest.fixture(scope="module")
def read_side(
    postgres: LocalPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Service, ProjectorProcess]]:
    """A service and a projector on a database of their own."""
    database_url = new_database(postgres, f"cqrs_ryw_{uuid.uuid4().hex[:8]}")
    logs = Path(tmp_path_factory.mktemp("read-side"))
    with (
        running_service(database_url, logs) as service,
        running_projector(database_url, logs) as projector,
    ):
        projector.wait_until_holding()
        yield service, projector


def test_every_query_with_the_202_position_sees_the_command(
    read_side: tuple[Service, ProjectorProcess],
) -> None:
    service, _ = read_side
    user = f"ryw_{uuid.uuid4().hex[:10]}"
    with service.client() as client:
        for number in range(20):
            body = {"user_id": user, "product_id": f"p{number}", "quantity": 1, "total_price": 2.5}
            placed = client.post(CREATE, json=body)
            assert placed.status_code == 202, placed.text
            order_id, position = placed.json()["order_id"], placed.json()["position"]
            seen = client.get(f"/api/queries/orders/{order_id}", params={"min_position": position})
            assert seen.status_code == 200, seen.text
            assert seen.json()["status"] == "placed"
            summary = client.get(
                f"/api/queries/users/{user}/summary", params={"min_position": position}
            )
            assert summary.json()["orders_placed"] == number + 1
        cancelled = client.post(CANCEL, json={"user_id": user, "order_id": order_id})
        assert cancelled.status_code == 202
        after = {"min_position": cancelled.json()["position"]}
        order = client.get(f"/api/queries/orders/{order_id}", params=after).json()
        summary = client.get(f"/api/queries/users/{user}/summary", params=after).json()
    assert (order["status"], order["order_id"]) == ("cancelled", order_id)
    assert (summary["orders_cancelled"], summary["open_orders"]) == (1, 19)
    assert summary["open_total"] == 47.5


def test_the_projections_endpoint_shows_both_running_and_caught_up(
    read_side: tuple[Service, ProjectorProcess],
) -> None:
    service, _ = read_side
    with service.client() as client:
        placed = client.post(
            CREATE,
            json={"user_id": "status-user", "product_id": "p", "quantity": 1, "total_price": 1},
        )
        client.get(
            "/api/queries/users/status-user/summary",
            params={"min_position": placed.json()["position"]},
        )
        response = client.get("/api/projections")
    assert response.status_code == 200
    statuses = {status["name"]: status for status in response.json()["projections"]}
    assert set(statuses) >= {"orders", "user_order_summaries"}
    for name in ("orders", "user_order_summaries"):
        status = statuses[name]
        assert status["state"] == "running"
        assert status["error"] is None
        assert status["events_applied"] >= 1
        assert status["position"] == status["head"]
        assert status["events_behind"] == 0


def test_the_projections_endpoint_takes_no_parameters(
    read_side: tuple[Service, ProjectorProcess],
) -> None:
    service, _ = read_side
    response = httpx.get(f"{service.url}/api/projections?verbose=1", timeout=10)
    assert response.status_code == 400
    assert response.json()["parameter"] == "verbose"
