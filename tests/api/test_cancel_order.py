"""Cancelling an order over HTTP: the decision from the stream, refusals, races, retries."""

import asyncio
import json
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from cqrs_demo.domain.ids import uuid7
from tests.races import hold_versions, wait_for_blocked_appends
from tests.support import Service

CREATE = "/api/commands/order/create"
CANCEL = "/api/commands/order/cancel"


def fresh_user() -> str:
    return f"cancel_{uuid.uuid4().hex[:12]}"


def place(client: httpx.Client, user: str) -> str:
    body = {"user_id": user, "product_id": "prod_456", "quantity": 2, "total_price": 150.00}
    response = client.post(CREATE, json=body)
    assert response.status_code == 202, response.text
    order_id = response.json()["order_id"]
    assert isinstance(order_id, str)
    return order_id


def stream_rows(database_url: str, user: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT version, event_type, payload, metadata FROM events"
            " WHERE aggregate_id = %s ORDER BY version",
            [user],
        ).fetchall()


def test_a_placed_order_is_cancelled_with_the_create_answers_shape(
    service: Service, database_url: str
) -> None:
    user = fresh_user()
    with service.client() as client:
        order_id = place(client, user)
        response = client.post(
            CANCEL,
            json={"user_id": user, "order_id": order_id, "reason": "found it cheaper"},
            headers={"X-Correlation-ID": "corr-42"},
        )
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {
        "status",
        "count",
        "aggregate_id",
        "order_id",
        "version",
        "event_ids",
        "position",
    }
    assert (body["status"], body["count"], body["aggregate_id"]) == ("events_persisted", "1", user)
    assert (body["order_id"], body["version"]) == (order_id, 2)
    assert response.headers["etag"] == '"2"'
    [_, (version, event_type, payload, metadata)] = stream_rows(database_url, user)
    assert (version, event_type) == (2, "OrderCancelled")
    assert payload["order_id"] == order_id
    assert (payload["user_id"], payload["reason"]) == (user, "found it cheaper")
    assert payload["cancelled_on"].startswith("20")
    assert metadata["correlation_id"] == "corr-42"
    assert str(uuid.UUID(body["event_ids"][0])) == body["event_ids"][0]
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT transaction_id || '-' || id FROM events WHERE event_id = %s",
            [body["event_ids"][0]],
        ).fetchone()
    assert stored == (body["position"],)


def test_an_order_not_in_the_users_stream_is_a_404_naming_both(
    service: Service, database_url: str
) -> None:
    owner, other = fresh_user(), fresh_user()
    with service.client() as client:
        order_id = place(client, owner)
        place(client, other)
        unknown = client.post(CANCEL, json={"user_id": other, "order_id": "no-such-order"})
        not_theirs = client.post(CANCEL, json={"user_id": other, "order_id": order_id})
        no_stream = client.post(CANCEL, json={"user_id": fresh_user(), "order_id": order_id})
    for response, order in ((unknown, "no-such-order"), (not_theirs, order_id)):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"] == "urn:cqrs-demo:order-not-found"
        assert (problem["order_id"], problem["user_id"]) == (order, other)
        assert problem["detail"] == f"order {order!r} is not an order of user {other!r}"
    assert no_stream.status_code == 404
    assert [row[1] for row in stream_rows(database_url, other)] == ["OrderCreated"]
    assert [row[1] for row in stream_rows(database_url, owner)] == ["OrderCreated"]


def test_a_second_cancel_is_a_409_saying_when_the_first_was(
    service: Service, database_url: str
) -> None:
    user = fresh_user()
    with service.client() as client:
        order_id = place(client, user)
        first = client.post(CANCEL, json={"user_id": user, "order_id": order_id})
        second = client.post(CANCEL, json={"user_id": user, "order_id": order_id})
    assert first.status_code == 202
    assert second.status_code == 409
    problem = second.json()
    assert problem["type"] == "urn:cqrs-demo:order-already-cancelled"
    assert problem["order_id"] == order_id
    cancelled_on = stream_rows(database_url, user)[1][2]["cancelled_on"]
    assert problem["cancelled_on"] == cancelled_on
    assert problem["detail"] == f"order {order_id!r} was already cancelled at {cancelled_on}"
    assert len(stream_rows(database_url, user)) == 2


@pytest.mark.anyio
async def test_eight_identical_cancels_at_once_are_one_202_and_seven_409s(
    service: Service, database_url: str
) -> None:
    user = fresh_user()
    with service.client() as client:
        order_id = place(client, user)
    # Version 2 is held: every cancel reads version 1, decides, and waits to append there;
    # released, one takes version 2 and the others lose the race, read again and refuse.
    holder = await hold_versions(database_url, (user,), 2)
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        cancel = {"user_id": user, "order_id": order_id}
        sent = [asyncio.create_task(client.post(CANCEL, json=cancel)) for _ in range(8)]
        await wait_for_blocked_appends(database_url, 1)
        await asyncio.sleep(0.3)
        await holder.rollback()
        await holder.close()
        answers = await asyncio.gather(*sent)
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [202] + [409] * 7, [answer.text for answer in answers]
    refusals = {answer.json()["type"] for answer in answers if answer.status_code == 409}
    assert refusals == {"urn:cqrs-demo:order-already-cancelled"}
    assert [row[1] for row in stream_rows(database_url, user)] == ["OrderCreated", "OrderCancelled"]


async def _cancel_while_an_order_is_committed_in_between(
    service: Service, database_url: str, **conditions: object
) -> tuple[httpx.Response, str]:
    """Cancel an order while another order's event holds the next version; once the cancel
    waits on it, that event commits: the cancel's append loses the race."""
    user = fresh_user()
    with service.client() as client:
        order_id = place(client, user)
    rival = {
        "event_type": "OrderCreated",
        "order_id": str(uuid7()),
        "user_id": user,
        "product_id": "prod_9",
        "quantity": 1,
        "total_price": 5,
    }
    holder = await hold_versions(
        database_url, (user,), 2, event_type="OrderCreated", payload=json.dumps(rival)
    )
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        body = {"user_id": user, "order_id": order_id, **conditions}
        cancel = asyncio.create_task(client.post(CANCEL, json=body))
        await wait_for_blocked_appends(database_url, 1)
        await holder.commit()
        await holder.close()
        return await cancel, user


@pytest.mark.anyio
async def test_a_cancel_that_loses_a_race_reads_again_and_decides_again(
    service: Service, database_url: str
) -> None:
    answer, user = await _cancel_while_an_order_is_committed_in_between(service, database_url)
    assert answer.status_code == 202, answer.text
    assert answer.json()["version"] == 3
    rows = stream_rows(database_url, user)
    assert [(row[0], row[1]) for row in rows] == [
        (1, "OrderCreated"),
        (2, "OrderCreated"),
        (3, "OrderCancelled"),
    ]


@pytest.mark.anyio
async def test_with_an_expected_version_a_lost_race_is_a_409_at_once(
    service: Service, database_url: str
) -> None:
    answer, user = await _cancel_while_an_order_is_committed_in_between(
        service, database_url, expected_version=1
    )
    assert answer.status_code == 409
    problem = answer.json()
    assert problem["type"] == "urn:cqrs-demo:version-conflict"
    assert (problem["expected_version"], problem["actual_version"]) == (1, 2)
    assert [row[1] for row in stream_rows(database_url, user)] == ["OrderCreated"] * 2


def test_a_stale_expected_version_or_if_match_is_a_409_without_deciding(
    service: Service, database_url: str
) -> None:
    user = fresh_user()
    with service.client() as client:
        order_id = place(client, user)
        place(client, user)
        cancel = {"user_id": user, "order_id": order_id}
        by_body = client.post(CANCEL, json={**cancel, "expected_version": 1})
        by_header = client.post(CANCEL, json=cancel, headers={"If-Match": '"1"'})
        current = client.post(CANCEL, json=cancel, headers={"If-Match": '"2"'})
    for stale in (by_body, by_header):
        assert stale.status_code == 409
        assert stale.headers["etag"] == '"2"'
        assert (stale.json()["expected_version"], stale.json()["actual_version"]) == (1, 2)
    assert current.status_code == 202
    assert current.json()["version"] == 3


def test_a_retried_cancel_with_its_idempotency_key_replays_the_first_answer(
    service: Service, database_url: str
) -> None:
    user, key = fresh_user(), f"key-{uuid.uuid4().hex}"
    with service.client() as client:
        order_id = place(client, user)
        cancel = {"user_id": user, "order_id": order_id, "reason": "late"}
        first = client.post(CANCEL, json=cancel, headers={"Idempotency-Key": key})
        again = client.post(CANCEL, json=cancel, headers={"Idempotency-Key": key})
        other = client.post(
            CANCEL, json={**cancel, "reason": "other"}, headers={"Idempotency-Key": key}
        )
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert other.status_code == 422
    assert other.json()["type"] == "urn:cqrs-demo:idempotency-key-reused"
    assert len(stream_rows(database_url, user)) == 2


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"order_id": "o"}, "user_id", "user_id is required"),
        ({"user_id": "u"}, "order_id", "order_id is required"),
        ({"user_id": "   ", "order_id": "o"}, "user_id", "user_id must not be blank"),
        ({"user_id": "u", "order_id": " o"}, "order_id", "order_id must not start or end"),
        ({"user_id": "u", "order_id": "o", "reason": "r" * 501}, "reason", "reason must be at"),
        ({"user_id": "u", "order_id": "o", "reason": "a\u202eb"}, "reason", "reason must not"),
        ({"user_id": "u", "order_id": "o", "quantity": 1}, "quantity", "unknown field: quantity"),
    ],
)
def test_a_bad_cancel_is_a_400_naming_the_field(
    service: Service, nothing_written: None, body: dict[str, object], field: str, message: str
) -> None:
    with service.client() as client:
        response = client.post(CANCEL, json=body)
    assert response.status_code == 400
    problem = response.json()
    assert problem["type"] == "urn:cqrs-demo:invalid-command"
    [error] = problem["errors"]
    assert error["field"] == field
    assert error["message"].startswith(message)


def test_a_stream_with_an_event_the_domain_cannot_read_is_a_500_naming_it_in_the_log(
    service: Service, database_url: str
) -> None:
    user = fresh_user()
    with service.client() as client:
        order_id = place(client, user)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "INSERT INTO events (aggregate_id, event_type, payload, version)"
            " VALUES (%s, 'OrderShipped', '{}', 2) RETURNING event_id",
            [user],
        ).fetchone()
    assert row is not None
    with service.client() as client:
        response = client.post(CANCEL, json={"user_id": user, "order_id": order_id})
    assert response.status_code == 500
    problem = response.json()
    assert problem["detail"] == f"Internal error; quote error id {problem['error_id']}."
    # The log line with the error id carries the traceback, ending in what was unreadable.
    service.wait_for_log(
        rf"internal error {problem['error_id']}[\s\S]*?UnreadableEvent: stored event"
        rf" {row[0]} \(OrderShipped\) is unreadable: unknown event type"
    )
    assert [r[1] for r in stream_rows(database_url, user)] == ["OrderCreated", "OrderShipped"]
