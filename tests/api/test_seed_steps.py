"""The seed's expected results, steps 1 to 4, over HTTP against ``cqrs-demo serve``."""

import asyncio
import uuid

import httpx
import psycopg
import pytest

from tests.races import hold_version_one, wait_for_blocked_appends
from tests.support import Service

SEED_BODY = {"user_id": "user_123", "product_id": "prod_456", "quantity": 2, "total_price": 150.00}
CREATE = "/api/commands/order/create"


def fresh_user(prefix: str = "user") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def post(service: Service, body: object, **headers: str) -> httpx.Response:
    with service.client() as client:
        return client.post(CREATE, json=body, headers=headers)


def stored(database_url: str, user: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT aggregate_id, event_type, version, payload FROM events"
            " WHERE aggregate_id = %s ORDER BY version",
            [user],
        ).fetchall()


def test_step_1_the_seed_curl_is_accepted(service: Service) -> None:
    response = post(service, {**SEED_BODY, "user_id": fresh_user()})
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"


def test_step_2_one_event_is_generated_and_logged(service: Service) -> None:
    user = fresh_user()
    response = post(service, {**SEED_BODY, "user_id": user})
    assert response.json()["count"] == "1"
    assert len(response.json()["event_ids"]) == 1
    # This request's own line (earlier tests' 202 lines are in the same log):
    service.wait_for_log(rf"POST {CREATE} 202 \S+ aggregate={user} version=1 events=1( |$)")


def test_step_3_the_event_is_persisted_in_the_user_stream(
    service: Service, database_url: str
) -> None:
    user = fresh_user()
    response = post(service, {**SEED_BODY, "user_id": user})
    body = response.json()
    assert response.status_code == 202
    assert {k: body[k] for k in ("status", "count")} == {"status": "events_persisted", "count": "1"}
    assert body["aggregate_id"] == user
    assert body["version"] == 1
    assert response.headers["etag"] == '"1"'
    [(aggregate_id, event_type, version, payload)] = stored(database_url, user)
    assert (aggregate_id, event_type, version) == (user, "OrderCreated", 1)
    assert isinstance(payload, dict)
    assert payload["event_type"] == "OrderCreated"
    assert payload["order_id"] == body["order_id"]
    assert (payload["user_id"], payload["product_id"], payload["quantity"]) == (user, "prod_456", 2)
    assert payload["total_price"] == 150


def test_sequential_orders_of_one_user_get_versions_1_2_3(
    service: Service, database_url: str
) -> None:
    user = fresh_user()
    versions = [post(service, {**SEED_BODY, "user_id": user}).json()["version"] for _ in range(3)]
    assert versions == [1, 2, 3]
    assert [row[2] for row in stored(database_url, user)] == [1, 2, 3]
    order_ids = {row[3]["order_id"] for row in stored(database_url, user)}  # type: ignore[index]
    assert len(order_ids) == 3


def test_the_price_is_kept_exactly_as_sent(service: Service, database_url: str) -> None:
    user = fresh_user()
    with service.client() as client:
        response = client.post(
            CREATE,
            headers={"content-type": "application/json"},
            content=b'{"user_id": "%s", "product_id": "p", "quantity": 1,'
            b' "total_price": 0.1000000}' % user.encode(),
        )
    assert response.status_code == 202
    with psycopg.connect(database_url) as conn:
        text = conn.execute(
            "SELECT payload->>'total_price' FROM events WHERE aggregate_id = %s", [user]
        ).fetchone()
    assert text == ("0.1000000",)


def test_the_client_timestamp_and_correlation_id_go_in_the_metadata(
    service: Service, database_url: str
) -> None:
    user = fresh_user()
    response = post(
        service,
        {**SEED_BODY, "user_id": user, "timestamp": "2026-11-26T10:00:00Z"},
        **{"X-Correlation-ID": "trace-42"},
    )
    assert response.status_code == 202
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT metadata, event_id::text FROM events WHERE aggregate_id = %s", [user]
        ).fetchone()
    assert row is not None
    metadata, event_id = row
    assert metadata["client_timestamp"] == "2026-11-26T10:00:00+00:00"
    assert metadata["correlation_id"] == "trace-42"
    assert uuid.UUID(metadata["command_id"]).version == 7
    assert response.json()["event_ids"] == [event_id]


def test_expected_version_in_the_body_or_if_match(service: Service) -> None:
    user = fresh_user()
    assert post(service, {**SEED_BODY, "user_id": user, "expected_version": 0}).status_code == 202
    assert (
        post(service, {**SEED_BODY, "user_id": user}, **{"If-Match": '"1"'}).json()["version"] == 2
    )
    assert (
        post(
            service, {**SEED_BODY, "user_id": user, "expected_version": 2}, **{"If-Match": '"2"'}
        ).json()["version"]
        == 3
    )


def test_a_stale_expected_version_is_a_409_naming_both_versions(
    service: Service, database_url: str
) -> None:
    user = fresh_user()
    post(service, {**SEED_BODY, "user_id": user})
    response = post(service, {**SEED_BODY, "user_id": user, "expected_version": 0})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["etag"] == '"1"'
    problem = response.json()
    assert problem["detail"] == "Conflict: Aggregate version mismatch. Please retry."
    assert (problem["expected_version"], problem["actual_version"]) == (0, 1)
    assert problem["aggregate_id"] == user
    assert len(stored(database_url, user)) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("expected_version", [None, 0], ids=["no-expected", "expected-0"])
async def test_step_4_two_identical_racing_requests_one_202_one_409_one_row(
    service: Service, database_url: str, expected_version: int | None
) -> None:
    # Made deterministic: a transaction of the test holds version 1 of user_test's stream, so
    # both requests have read head 0 and wait on it; then it rolls back.
    user = fresh_user("user_test")
    body: dict[str, object] = {**SEED_BODY, "user_id": user}
    if expected_version is not None:
        body["expected_version"] = expected_version
    holder = await hold_version_one(database_url, user)
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        requests = [asyncio.create_task(client.post(CREATE, json=body)) for _ in range(2)]
        await wait_for_blocked_appends(database_url, 2)
        await holder.rollback()
        await holder.close()
        responses = await asyncio.gather(*requests)
    assert sorted(r.status_code for r in responses) == [202, 409]
    conflict = next(r for r in responses if r.status_code == 409).json()
    assert (conflict["expected_version"], conflict["actual_version"]) == (0, 1)
    assert [row[2] for row in stored(database_url, user)] == [1]
