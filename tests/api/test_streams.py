"""Reading a stream over HTTP: pages both ways, ETag and Link, 404, every bad parameter."""

import json
import uuid
from urllib.parse import quote

import httpx
import pytest

from tests.support import Service

CREATE = "/api/commands/order/create"
JSON = {"Content-Type": "application/json"}


def fill(client: httpx.Client, user: str, count: int) -> None:
    for number in range(count):
        body = json.dumps({"user_id": user, "product_id": f"p{number}", "quantity": 1})
        content = body[:-1] + ', "total_price": 9.50}'  # as written: json= would send 9.5
        response = client.post(
            CREATE, content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 202


def events_url(user: str) -> str:
    return f"/api/streams/{quote(user, safe='')}/events"


@pytest.fixture(scope="module")
def user_of_five(service: Service) -> str:
    """A user with five orders, shared by the tests that only read."""
    user = f"reader_{uuid.uuid4().hex[:12]}"
    with service.client() as client:
        fill(client, user, 5)
    return user


def test_a_stream_reads_forward_with_its_version_and_exact_payloads(
    service: Service, user_of_five: str
) -> None:
    with service.client() as client:
        response = client.get(events_url(user_of_five))
    assert response.status_code == 200
    assert response.headers["etag"] == '"5"'
    assert "link" not in response.headers
    page = response.json()
    assert (page["aggregate_id"], page["stream_version"], page["direction"]) == (
        user_of_five,
        5,
        "forward",
    )
    assert [event["version"] for event in page["events"]] == [1, 2, 3, 4, 5]
    first = page["events"][0]
    assert set(first) == {"event_id", "event_type", "version", "occurred_on", "payload", "metadata"}
    assert first["event_type"] == "OrderCreated"
    assert first["payload"]["product_id"] == "p0"
    assert '"total_price":9.50' in response.text  # the decimal as sent, not a float's 9.5
    assert set(first["metadata"]) >= {"command_id", "correlation_id"}


def test_pages_follow_the_link_forward_to_the_end(service: Service, user_of_five: str) -> None:
    versions, url, pages = [], f"{events_url(user_of_five)}?limit=2", 0
    with service.client() as client:
        while url:
            response = client.get(url)
            assert response.status_code == 200
            versions += [event["version"] for event in response.json()["events"]]
            url = response.links.get("next", {}).get("url", "")
            pages += 1
    assert (versions, pages) == ([1, 2, 3, 4, 5], 3)


def test_pages_follow_the_link_backward_from_the_head(service: Service, user_of_five: str) -> None:
    versions, url = [], f"{events_url(user_of_five)}?direction=backward&limit=3"
    with service.client() as client:
        while url:
            response = client.get(url)
            versions += [event["version"] for event in response.json()["events"]]
            url = response.links.get("next", {}).get("url", "")
    assert versions == [5, 4, 3, 2, 1]


def test_from_version_starts_the_page_either_way(service: Service, user_of_five: str) -> None:
    with service.client() as client:
        forward = client.get(f"{events_url(user_of_five)}?from_version=4").json()
        backward = client.get(
            f"{events_url(user_of_five)}?from_version=2&direction=backward"
        ).json()
        beyond = client.get(f"{events_url(user_of_five)}?from_version=9")
    assert [event["version"] for event in forward["events"]] == [4, 5]
    assert [event["version"] for event in backward["events"]] == [2, 1]
    assert (beyond.status_code, beyond.json()["events"], beyond.headers["etag"]) == (200, [], '"5"')


def test_a_stream_without_events_is_a_404_problem(service: Service) -> None:
    with service.client() as client:
        response = client.get(events_url("nobody-at-all"))
    assert response.status_code == 404
    problem = response.json()
    assert problem["type"] == "urn:cqrs-demo:stream-not-found"
    assert problem["detail"] == "stream 'nobody-at-all' has no events"


def test_an_id_with_a_slash_or_unicode_is_read_by_its_percent_encoding(service: Service) -> None:
    user = f"team/ü {uuid.uuid4().hex[:8]}"
    with service.client() as client:
        fill(client, user, 1)
        response = client.get(events_url(user))
    assert response.status_code == 200
    assert response.json()["aggregate_id"] == user


@pytest.mark.parametrize(
    ("query", "parameter", "detail"),
    [
        ("limit=0", "limit", "limit must be from 1 to 1000, got 0"),
        ("limit=1001", "limit", "limit must be from 1 to 1000, got 1001"),
        ("limit=100000000000000000000", "limit", "limit must be a whole number from 1 to 1000"),
        ("limit=-1", "limit", "limit must be a whole number from 1 to 1000, got -1"),
        ("limit=", "limit", "limit must be a whole number"),
        ("from_version=abc", "from_version", "from_version must be a whole number"),
        ("from_version=0", "from_version", "from_version must be from 1 to"),
        ("from_version=-3", "from_version", "from_version must be a whole number"),
        ("direction=sideways", "direction", "direction must be forward or backward"),
        ("limit=1&limit=2", "limit", "limit is given more than once"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(
    service: Service, user_of_five: str, query: str, parameter: str, detail: str
) -> None:
    with service.client() as client:
        response = client.get(f"{events_url(user_of_five)}?{query}")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["parameter"] == parameter
    assert problem["detail"].startswith(detail)


def test_an_unknown_parameter_is_a_400_naming_it(service: Service, user_of_five: str) -> None:
    with service.client() as client:
        response = client.get(f"{events_url(user_of_five)}?limt=5")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "unknown query parameter 'limt'; known: from_version, limit, direction"
    )


@pytest.mark.parametrize(
    ("encoded", "detail"),
    [
        ("a%00b", "aggregate_id must not contain control characters"),
        ("a%0Ab", "aggregate_id must not contain control characters"),
        ("%0A", "aggregate_id must not contain control characters"),
        ("u" * 256, "aggregate_id must be at most 255 characters, got 256"),
        ("%20%20", "aggregate_id must not be blank"),
        ("%20alice", "aggregate_id must not start or end with white space"),
        ("%FF%FE", "aggregate_id is not UTF-8 once percent-decoded (byte 0)"),
        ("", "aggregate_id is required"),
    ],
)
def test_a_bad_aggregate_id_is_a_400_naming_it(service: Service, encoded: str, detail: str) -> None:
    with service.client() as client:
        response = client.get(f"/api/streams/{encoded}/events")
    assert response.status_code == 400
    problem = response.json()
    assert problem["parameter"] == "aggregate_id"
    assert problem["detail"].startswith(detail)
