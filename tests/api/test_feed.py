"""The global feed over HTTP: paging in order, read-your-writes, the long poll, tokens and
every bad parameter."""

import itertools
import json
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from cqrs_demo.api.auth import new_token
from cqrs_demo.ports import Position
from tests.support import Service, running_service, wait_for_match

CREATE = "/api/commands/order/create"
FEED = "/api/events"


def place(client: httpx.Client, user: str) -> dict[str, Any]:
    """A new order of ``user`` with a price of 9.50, sent as written; the 202's body."""
    content = json.dumps({"user_id": user, "product_id": "p", "quantity": 1})
    content = content[:-1] + ', "total_price": 9.50}'
    response = client.post(CREATE, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def read_to_end(client: httpx.Client, after: str | None, limit: int) -> tuple[list[Any], str]:
    """Every event after ``after``, page by page, and the ``next`` of the last page."""
    events: list[Any] = []
    params: dict[str, str | int] = {"limit": limit}
    if after is not None:
        params["after"] = after
    while True:
        response = client.get(FEED, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["events"]) <= limit
        if not page["events"]:
            assert page["next"] == params.get("after", "0-0")
            return events, page["next"]
        assert page["next"] == page["events"][-1]["position"]
        events += page["events"]
        params["after"] = page["next"]


def head(client: httpx.Client) -> str:
    return read_to_end(client, None, 1000)[1]


def test_the_feed_pages_to_the_end_in_strictly_increasing_positions(service: Service) -> None:
    users = [f"feed_{uuid.uuid4().hex[:12]}" for _ in range(3)]
    with service.client() as client:
        start = head(client)
        placed = [place(client, user) for _ in range(3) for user in users]
        events, end = read_to_end(client, start, limit=4)
    positions = [Position.parse(event["position"]) for event in events]
    assert all(a < b for a, b in itertools.pairwise(positions))
    mine = [event for event in events if event["stream"] in users]
    assert [event["event_id"] for event in mine] == [body["event_ids"][0] for body in placed]
    assert end == events[-1]["position"]
    first = mine[0]
    assert set(first) == {
        "position",
        "stream",
        "event_id",
        "event_type",
        "version",
        "occurred_on",
        "payload",
        "metadata",
    }
    assert (first["stream"], first["event_type"], first["version"]) == (
        users[0],
        "OrderCreated",
        1,
    )


def test_a_commands_position_is_its_event_in_the_feed_with_exact_decimals(
    service: Service,
) -> None:
    user = f"feed_{uuid.uuid4().hex[:12]}"
    with service.client() as client:
        start = head(client)
        accepted = place(client, user)
        response = client.get(FEED, params={"after": start})
    assert response.status_code == 200
    page = response.json()
    [event] = [event for event in page["events"] if event["position"] == accepted["position"]]
    assert (event["stream"], [event["event_id"]]) == (user, accepted["event_ids"])
    assert Position.parse(page["next"]) >= Position.parse(str(accepted["position"]))
    assert re.search(r'"total_price":9\.50[,}]', response.text)


def test_a_long_poll_answers_as_soon_as_a_command_lands(service: Service) -> None:
    user = f"feed_{uuid.uuid4().hex[:12]}"
    with service.client() as client:
        start = head(client)
        placed: list[dict[str, Any]] = []
        timer = threading.Timer(0.5, lambda: placed.append(place(client, user)))
        began = time.monotonic()
        timer.start()
        response = client.get(FEED, params={"after": start, "wait": 20})
        took = time.monotonic() - began
        timer.join()
    assert response.status_code == 200
    assert 0.4 < took < 5, took
    assert [e["event_id"] for e in response.json()["events"]] == placed[0]["event_ids"]


def test_a_long_poll_with_nothing_new_answers_an_empty_page_after_wait(
    service: Service,
) -> None:
    with service.client() as client:
        start = head(client)
        began = time.monotonic()
        response = client.get(FEED, params={"after": start, "wait": 1})
        took = time.monotonic() - began
    assert response.status_code == 200
    assert response.json() == {"events": [], "next": start}
    assert 0.9 < took < 5, took


def test_a_long_poll_whose_client_went_away_ends_at_once(service: Service) -> None:
    with service.client() as client:
        start = head(client)
    logged_before = len(service.log())
    with (
        httpx.Client(base_url=service.url, timeout=0.5) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.get(FEED, params={"after": start, "wait": 30})
    # The worker notices within a poll, answers into the void, and logs the request (the
    # reads of the head before it were answered in milliseconds).
    line = wait_for_match(
        lambda: service.log()[logged_before:], r"GET /api/events 200 (\d{3,})\.\dms"
    )
    assert 400 < int(line[1]) < 5000, line[0]


def test_a_stopping_worker_answers_its_long_polls_at_once(
    database_url: str, tmp_path: Path
) -> None:
    with running_service(database_url, tmp_path) as service:
        with service.client() as client:
            start = head(client)
        answers: list[httpx.Response] = []

        def long_poll() -> None:
            with service.client() as client:
                answers.append(client.get(FEED, params={"after": start, "wait": 30}))

        polling = threading.Thread(target=long_poll)
        polling.start()
        service.wait_for_log(r"ready: schema version")
        time.sleep(0.5)
        began = time.monotonic()
        assert service.stop() == 0
        took = time.monotonic() - began
        polling.join(timeout=30)
    assert took < 5, took
    assert [(a.status_code, a.json()) for a in answers] == [(200, {"events": [], "next": start})]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("after=abc", "after"),
        ("after=1-", "after"),
        ("after=-1", "after"),
        ("after=1-2-3", "after"),
        ("after=%00", "after"),
        ("after=1-2%00", "after"),
        ("after=18446744073709551616-1", "after"),
        ("after=1-9223372036854775808", "after"),
        ("after=", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("limit=ten", "limit"),
        ("wait=31", "wait"),
        ("wait=-1", "wait"),
        ("wait=1.5", "wait"),
        ("wait=%00", "wait"),
        ("limit=1&limit=2", "limit"),
        ("after=1-1&after=1-1", "after"),
        ("from_version=1", "from_version"),
        ("%00=1", "\\x00"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(service: Service, query: str, parameter: str) -> None:
    with service.client() as client:
        response = client.get(f"{FEED}?{query}")
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["parameter"] == parameter
    assert parameter in problem["detail"]
    assert response.headers["content-type"] == "application/problem+json"


def test_the_feed_needs_a_token_once_tokens_are_configured(
    database_url: str, tmp_path: Path
) -> None:
    token, digest = new_token()
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"projector sha256:{digest}\n")
    with (
        running_service(database_url, tmp_path, CQRS_TOKENS_FILE=str(tokens_file)) as service,
        service.client() as client,
    ):
        refused = client.get(FEED)
        read = client.get(FEED, params={"limit": 1}, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    assert read.status_code == 200
