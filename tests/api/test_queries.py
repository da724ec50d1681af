"""The query API over HTTP: shapes, exact decimals, keyset pages, the position of every
answer, read-your-writes (waiting, bounded, without holding a connection), bad parameters.

The projector is another process; here ``project`` plays its part: it writes read-model
rows and the projection's checkpoint in one transaction, as the projector does.
"""

import asyncio
import base64
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest

from cqrs_demo.api.auth import new_token
from cqrs_demo.localdb import LocalPostgres
from cqrs_demo.ports import ORDERS_PROJECTION, START, SUMMARIES_PROJECTION, Position
from tests.support import Service, new_database, running_service

CREATE = "/api/commands/order/create"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Order:
    order_id: str
    user_id: str
    placed_at: datetime
    total_price: Decimal = Decimal("150.00")
    status: str = "placed"
    cancelled_at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Summary:
    user_id: str
    placed: int
    cancelled: int
    open_orders: int
    open_total: Decimal
    last_order_at: datetime


def fresh(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def checkpoint(database_url: str, projection: str) -> Position:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT transaction_id::text, event_number FROM projection_checkpoints"
            " WHERE projection = %s",
            [projection],
        ).fetchone()
    return START if row is None else Position(int(row[0]), int(row[1]))


def ahead(database_url: str, *projections: str) -> Position:
    """A position one transaction past the checkpoints of ``projections``."""
    now = max(checkpoint(database_url, projection) for projection in projections)
    return Position(now.transaction_id + 1, 7)


def project(
    database_url: str,
    projection: str,
    *,
    orders: Sequence[Order] = (),
    summaries: Sequence[Summary] = (),
    to: Position | None = None,
) -> Position:
    """The projector's part: write rows and move the checkpoint to ``to`` (``None``: one
    transaction on), in one transaction; return the new checkpoint."""
    position = to or ahead(database_url, projection)
    with psycopg.connect(database_url) as conn, conn.transaction():
        for order in orders:
            conn.execute(
                "INSERT INTO orders (order_id, user_id, product_id, quantity, total_price,"
                " status, placed_at, cancelled_at, reason)"
                " VALUES (%s, %s, 'prod_456', 2, %s, %s, %s, %s, %s)",
                [
                    order.order_id,
                    order.user_id,
                    order.total_price,
                    order.status,
                    order.placed_at,
                    order.cancelled_at,
                    order.reason,
                ],
            )
        for summary in summaries:
            conn.execute(
                "INSERT INTO user_order_summaries (user_id, orders_placed, orders_cancelled,"
                " open_orders, open_total, last_order_at) VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    summary.user_id,
                    summary.placed,
                    summary.cancelled,
                    summary.open_orders,
                    summary.open_total,
                    summary.last_order_at,
                ],
            )
        conn.execute(
            "INSERT INTO projection_checkpoints (projection, transaction_id, event_number)"
            " VALUES (%s, %s::xid8, %s) ON CONFLICT (projection) DO UPDATE"
            " SET transaction_id = excluded.transaction_id,"
            " event_number = excluded.event_number, updated_at = now()",
            [projection, str(position.transaction_id), position.event_number],
        )
    return position


def project_later(seconds: float, database_url: str, projection: str, **rows: object) -> None:
    """``project`` in a thread, ``seconds`` from now."""

    def run() -> None:
        time.sleep(seconds)
        project(database_url, projection, **rows)  # type: ignore[arg-type]

    threading.Thread(target=run, daemon=True).start()


def order_url(order_id: str) -> str:
    return f"/api/queries/orders/{quote(order_id, safe='')}"


def orders_url(user: str) -> str:
    return f"/api/queries/users/{quote(user, safe='')}/orders"


def summary_url(user: str) -> str:
    return f"/api/queries/users/{quote(user, safe='')}/summary"


def test_an_order_reads_as_stored_with_its_exact_price_and_position(
    service: Service, database_url: str
) -> None:
    user, order_id = fresh("reader"), str(uuid.uuid4())
    position = project(database_url, ORDERS_PROJECTION, orders=[Order(order_id, user, T0)])
    with service.client() as client:
        response = client.get(order_url(order_id))
    assert response.status_code == 200
    assert response.headers["projection-position"] == str(position)
    assert response.json() == {
        "order_id": order_id,
        "user_id": user,
        "product_id": "prod_456",
        "quantity": 2,
        "total_price": 150.0,
        "status": "placed",
        "placed_at": "2026-03-01T12:00:00+00:00",
        "cancelled_at": None,
        "reason": None,
    }
    assert '"total_price":150.00,' in response.text  # the stored NUMERIC, not a float's 150.0


def test_a_cancelled_order_says_when_and_why(service: Service, database_url: str) -> None:
    user, order_id = fresh("reader"), str(uuid.uuid4())
    cancelled = Order(
        order_id,
        user,
        T0,
        Decimal("0.10"),
        "cancelled",
        T0 + timedelta(minutes=5, microseconds=1),
        "changed my mind",
    )
    project(database_url, ORDERS_PROJECTION, orders=[cancelled])
    with service.client() as client:
        body = client.get(order_url(order_id)).json()
    assert (body["status"], body["cancelled_at"], body["reason"]) == (
        "cancelled",
        "2026-03-01T12:05:00.000001+00:00",
        "changed my mind",
    )


def test_an_unknown_order_is_a_404_problem_at_a_stated_position(
    service: Service, database_url: str
) -> None:
    position = project(database_url, ORDERS_PROJECTION)
    with service.client() as client:
        response = client.get(order_url("no-such-order"))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["projection-position"] == str(position)
    problem = response.json()
    assert problem["type"] == "urn:cqrs-demo:order-not-found"
    assert problem["order_id"] == "no-such-order"
    assert problem["detail"] == (
        f"order 'no-such-order' is not in the orders read model at position {position}"
    )


def nine_orders(user: str) -> list[Order]:
    """Nine orders of ``user``, ``<user>:order-0`` to ``-8``: seven a minute apart, two
    more at the newest's time; 1, 4 and 8 cancelled."""
    orders = [Order(f"{user}:order-{n}", user, T0 + timedelta(minutes=n)) for n in range(7)]
    orders += [Order(f"{user}:order-{n}", user, T0 + timedelta(minutes=6)) for n in (7, 8)]
    cancelled = {f"{user}:order-{n}" for n in (1, 4, 8)}
    return [
        Order(o.order_id, user, o.placed_at, status="cancelled", cancelled_at=o.placed_at)
        if o.order_id in cancelled
        else o
        for o in orders
    ]


@pytest.fixture(scope="module")
def user_of_nine(database_url: str) -> str:
    user = f"team/ü {uuid.uuid4().hex[:8]}"  # a slash and Unicode, percent-encoded in URLs
    project(database_url, ORDERS_PROJECTION, orders=nine_orders(user))
    return user


def follow(client: httpx.Client, url: str) -> tuple[list[str], list[int]]:
    """The order ids (without their ``<user>:``) of every page from ``url`` on, following
    ``Link: rel="next"``; and how many orders each page held."""
    found: list[str] = []
    sizes: list[int] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        orders = response.json()["orders"]
        found += [order["order_id"].removeprefix(f"{order['user_id']}:") for order in orders]
        sizes.append(len(orders))
        url = response.links.get("next", {}).get("url", "")
    return found, sizes


NEWEST_FIRST = ["order-8", "order-7", "order-6", "order-5", "order-4", "order-3", "order-2"]
NEWEST_FIRST += ["order-1", "order-0"]


def test_pages_follow_the_link_newest_first_to_the_end(service: Service, user_of_nine: str) -> None:
    with service.client() as client:
        assert follow(client, f"{orders_url(user_of_nine)}?limit=3") == (NEWEST_FIRST, [3, 3, 3])
        assert follow(client, f"{orders_url(user_of_nine)}?limit=4") == (NEWEST_FIRST, [4, 4, 1])
        assert follow(client, orders_url(user_of_nine)) == (NEWEST_FIRST, [9])


def test_the_status_filter_holds_on_every_page(service: Service, user_of_nine: str) -> None:
    with service.client() as client:
        cancelled = follow(client, f"{orders_url(user_of_nine)}?status=cancelled&limit=1")
        placed = follow(client, f"{orders_url(user_of_nine)}?limit=5&status=placed")
    assert cancelled == (["order-8", "order-4", "order-1"], [1, 1, 1])
    assert placed == (["order-7", "order-6", "order-5", "order-3", "order-2", "order-0"], [5, 1])


def test_a_page_holds_the_orders_as_stored(
    service: Service, database_url: str, user_of_nine: str
) -> None:
    with service.client() as client:
        response = client.get(f"{orders_url(user_of_nine)}?limit=1")
    assert response.status_code == 200
    assert response.json()["user_id"] == user_of_nine
    (newest,) = response.json()["orders"]
    assert (newest["order_id"], newest["status"], newest["placed_at"]) == (
        f"{user_of_nine}:order-8",
        "cancelled",
        "2026-03-01T12:06:00+00:00",
    )
    assert '"total_price":150.00,' in response.text
    assert response.headers["projection-position"] == str(
        checkpoint(database_url, ORDERS_PROJECTION)
    )


def test_a_user_without_orders_has_an_empty_list(service: Service) -> None:
    with service.client() as client:
        response = client.get(orders_url(fresh("nobody")))
    assert response.status_code == 200
    assert response.json()["orders"] == []
    assert "link" not in response.headers


def test_a_summary_reads_as_stored_at_its_own_projections_position(
    service: Service, database_url: str
) -> None:
    user = fresh("summed")
    further = ahead(database_url, ORDERS_PROJECTION, SUMMARIES_PROJECTION)
    project(database_url, ORDERS_PROJECTION, to=Position(further.transaction_id + 5, 1))
    summary = Summary(user, 5, 2, 3, Decimal("450.00"), T0)
    position = project(database_url, SUMMARIES_PROJECTION, summaries=[summary])
    with service.client() as client:
        response = client.get(summary_url(user))
    assert response.status_code == 200
    assert response.headers["projection-position"] == str(position)
    assert response.json() == {
        "user_id": user,
        "orders_placed": 5,
        "orders_cancelled": 2,
        "open_orders": 3,
        "open_total": 450.0,
        "last_order_at": "2026-03-01T12:00:00+00:00",
    }
    assert '"open_total":450.00,' in response.text


def test_a_user_without_orders_has_an_all_zero_summary(service: Service, database_url: str) -> None:
    user = fresh("nobody")
    with service.client() as client:
        response = client.get(summary_url(user))
    assert response.status_code == 200
    assert response.headers["projection-position"] == str(
        checkpoint(database_url, SUMMARIES_PROJECTION)
    )
    assert response.json() == {
        "user_id": user,
        "orders_placed": 0,
        "orders_cancelled": 0,
        "open_orders": 0,
        "open_total": 0,
        "last_order_at": None,
    }


def test_min_position_waits_for_the_projection_then_answers_with_the_write(
    service: Service, database_url: str
) -> None:
    user, order_id = fresh("writer"), str(uuid.uuid4())
    wanted = ahead(database_url, ORDERS_PROJECTION)
    project_later(0.3, database_url, ORDERS_PROJECTION, orders=[Order(order_id, user, T0)])
    started = time.monotonic()
    with service.client() as client:
        response = client.get(f"{order_url(order_id)}?min_position={wanted}&wait_ms=5000")
    waited = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["order_id"] == order_id
    assert Position.parse(response.headers["projection-position"]) >= wanted
    assert 0.25 <= waited < 3.0


def test_each_query_waits_for_its_own_projection(service: Service, database_url: str) -> None:
    user = fresh("writer")
    wanted = ahead(database_url, ORDERS_PROJECTION, SUMMARIES_PROJECTION)
    summary = Summary(user, 1, 0, 1, Decimal("9.50"), T0)
    project_later(0.3, database_url, SUMMARIES_PROJECTION, summaries=[summary], to=wanted)
    with service.client() as client:
        response = client.get(f"{summary_url(user)}?min_position={wanted}")
        listing = client.get(f"{orders_url(user)}?min_position={wanted}&wait_ms=0")
    assert response.status_code == 200, response.text
    assert response.json()["open_total"] == 9.5
    assert Position.parse(response.headers["projection-position"]) >= wanted
    assert (listing.status_code, listing.json()["projection"]) == (503, ORDERS_PROJECTION)


def test_a_position_already_reached_answers_at_once(service: Service, database_url: str) -> None:
    reached = project(database_url, ORDERS_PROJECTION)
    started = time.monotonic()
    with service.client() as client:
        response = client.get(f"{orders_url(fresh('u'))}?min_position={reached}&wait_ms=10000")
        earlier = client.get(f"{orders_url(fresh('u'))}?min_position=1-1")
    assert time.monotonic() - started < 1.0
    assert (response.status_code, earlier.status_code) == (200, 200)


def test_a_position_never_reached_is_a_503_naming_both_after_wait_ms(
    service: Service, database_url: str
) -> None:
    reached = project(database_url, ORDERS_PROJECTION)
    wanted = Position(reached.transaction_id + 1000, 1)
    started = time.monotonic()
    with service.client() as client:
        response = client.get(f"{order_url('o-1')}?wait_ms=600&min_position={wanted}")
    waited = time.monotonic() - started
    assert response.status_code == 503
    assert 0.55 <= waited < 3.0
    assert response.headers["retry-after"] == "1"
    assert response.headers["projection-position"] == str(reached)
    problem = response.json()
    assert problem["type"] == "urn:cqrs-demo:projection-behind"
    assert (problem["projection"], problem["wanted_position"], problem["reached_position"]) == (
        "orders",
        str(wanted),
        str(reached),
    )
    assert problem["detail"].startswith(
        f"projection 'orders' is at {reached}, behind the position {wanted} asked for,"
        " after waiting "
    )


def test_a_projection_stopped_short_of_min_position_is_a_503_at_once_naming_its_event(
    fresh_database_url: str, tmp_path: Path
) -> None:
    reached = project(fresh_database_url, SUMMARIES_PROJECTION)
    failed = uuid.uuid4()
    with psycopg.connect(fresh_database_url) as conn:
        conn.execute(
            "UPDATE projection_checkpoints SET state = 'stopped', failed_event_id = %s,"
            " failed_event_type = 'OrderCreated', error = 'quantity: secret-looking 4242'"
            " WHERE projection = %s",
            [failed, SUMMARIES_PROJECTION],
        )
    wanted = Position(reached.transaction_id + 1000, 1)
    with running_service(fresh_database_url, tmp_path) as service, service.client() as client:
        started = time.monotonic()
        response = client.get(f"{summary_url('u-1')}?wait_ms=10000&min_position={wanted}")
        waited = time.monotonic() - started
        earlier = client.get(f"{summary_url('u-1')}?min_position={reached}")
    assert response.status_code == 503
    assert waited < 2.0  # at the watch's first poll, not after wait_ms
    assert response.headers["retry-after"] == "30"
    assert response.headers["projection-position"] == str(reached)
    problem = response.json()
    assert problem["type"] == "urn:cqrs-demo:projection-behind"
    assert (problem["projection"], problem["wanted_position"], problem["reached_position"]) == (
        SUMMARIES_PROJECTION,
        str(wanted),
        str(reached),
    )
    assert problem["stopped_at_event"] == str(failed)
    assert problem["detail"] == (
        f"projection 'user_order_summaries' is stopped at {reached}, behind the position"
        f" {wanted} asked for: it cannot apply event {failed} (OrderCreated), and goes on"
        " once an operator skips that event or a release applies it"
        " (GET /api/projections says why)"
    )
    assert "4242" not in response.text  # the reason, which may quote event data, is not
    assert earlier.status_code == 200  # what it has applied is answered as ever


def cursor(text: bytes) -> str:
    return base64.urlsafe_b64encode(text).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("query", "parameter", "detail"),
    [
        ("min_position=abc", "min_position", "min_position must be a position"),
        ("min_position=12-", "min_position", "min_position must be a position"),
        ("min_position=", "min_position", "min_position must be a position"),
        ("min_position=18446744073709551616-1", "min_position", "min_position must be"),
        ("min_position=1-2&min_position=1-2", "min_position", "min_position is given more"),
        ("wait_ms=10001", "wait_ms", "wait_ms must be from 0 to 10000, got 10001"),
        ("wait_ms=-1", "wait_ms", "wait_ms must be a whole number from 0 to 10000, got -1"),
        ("wait_ms=1.5", "wait_ms", "wait_ms must be a whole number"),
        ("limit=0", "limit", "limit must be from 1 to 1000, got 0"),
        ("limit=1001", "limit", "limit must be from 1 to 1000, got 1001"),
        ("limit=99999999999999999999999", "limit", "limit must be a whole number"),
        ("limit=1&limit=1", "limit", "limit is given more than once"),
        ("status=open", "status", "status must be placed or cancelled, got 'open'"),
        ("status=", "status", "status must be placed or cancelled"),
        ("after=%21%21", "after", "after is not a cursor of this list"),
        ("after=", "after", "after is not a cursor of this list"),
        (f"after={'A' * 1025}", "after", "after is not a cursor of this list"),
        *(
            ("after=" + cursor(text), "after", "after is not a cursor of this list")
            for text in (
                b"garbage",
                b"[1, 2]",
                b'["yesterday", "o-1"]',
                b'["2026-03-01T12:00:00", "o-1"]',  # no time zone
                b'["2026-03-01T12:00:00+00:00", "o\\u0000"]',  # NUL in the id
                b'["2026-03-01T12:00:00+00:00"]',
                b'{"2026-03-01T12:00:00+00:00": 1, "o-1": 2}',
            )
        ),
    ],
)
def test_a_bad_listing_parameter_is_a_400_naming_it(
    service: Service, query: str, parameter: str, detail: str
) -> None:
    with service.client() as client:
        response = client.get(f"{orders_url('someone')}?{query}")
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["parameter"] == parameter
    assert problem["detail"].startswith(detail)


@pytest.mark.parametrize("path", [order_url("o-1"), summary_url("u-1"), orders_url("u-1")])
@pytest.mark.parametrize(
    ("query", "parameter"),
    [("min_position=x-1", "min_position"), ("wait_ms=20000", "wait_ms")],
)
def test_bad_freshness_parameters_are_a_400_on_every_query(
    service: Service, path: str, query: str, parameter: str
) -> None:
    with service.client() as client:
        response = client.get(f"{path}?{query}")
    assert (response.status_code, response.json()["parameter"]) == (400, parameter)


@pytest.mark.parametrize(
    ("path", "known"),
    [
        (order_url("o-1"), "min_position, wait_ms"),
        (summary_url("u-1"), "min_position, wait_ms"),
        (orders_url("u-1"), "status, limit, after, min_position, wait_ms"),
    ],
)
def test_an_unknown_parameter_is_a_400_listing_the_known_ones(
    service: Service, path: str, known: str
) -> None:
    with service.client() as client:
        response = client.get(f"{path}?sort=asc")
    assert response.status_code == 400
    assert response.json()["detail"].endswith(f"; known: {known}")


@pytest.mark.parametrize(
    ("encoded", "detail"),
    [
        ("a%00b", "must not contain control characters"),
        ("a%0Ab", "must not contain control characters"),
        ("u" * 256, "must be at most 255 characters, got 256"),
        ("%20%20", "must not be blank"),
        ("%20alice", "must not start or end with white space"),
        ("%FF%FE", "is not UTF-8 once percent-decoded (byte 0)"),
    ],
)
@pytest.mark.parametrize(
    ("template", "parameter"),
    [
        ("/api/queries/orders/{}", "order_id"),
        ("/api/queries/users/{}/orders", "user_id"),
        ("/api/queries/users/{}/summary", "user_id"),
    ],
)
def test_a_bad_id_is_a_400_naming_it(
    service: Service, encoded: str, detail: str, template: str, parameter: str
) -> None:
    with service.client() as client:
        response = client.get(template.format(encoded))
    assert response.status_code == 400
    problem = response.json()
    assert problem["parameter"] == parameter
    assert problem["detail"].startswith(f"{parameter} {detail}")


# A service of its own: one worker whose pool has two connections, tokens required.
POOL_SIZE = 2


@dataclass(frozen=True)
class SmallService:
    service: Service
    database_url: str
    token: str

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.service.url,
            timeout=30,
            headers={"Authorization": f"Bearer {self.token}"},
            limits=httpx.Limits(max_connections=100),
        )


@pytest.fixture(scope="module")
def small_service(
    postgres: LocalPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SmallService]:
    database_url = new_database(postgres, f"cqrs_queries_{uuid.uuid4().hex[:8]}")
    token, digest = new_token()
    tmp_path = Path(tmp_path_factory.mktemp("small"))
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"reader sha256:{digest}\n")
    with running_service(
        database_url,
        tmp_path,
        CQRS_WORKERS="1",
        CQRS_POOL_MIN_SIZE="1",
        CQRS_POOL_MAX_SIZE=str(POOL_SIZE),
        CQRS_POOL_TIMEOUT="1",
        CQRS_TOKENS_FILE=str(tokens_file),
    ) as service:
        yield SmallService(service, database_url, token)


WAITERS = 12  # six times the pool


async def waiting_queries_and_a_command(
    small: SmallService, wanted: Position, wait_ms: int
) -> tuple[list[httpx.Response], httpx.Response, float]:
    """``WAITERS`` queries waiting for ``wanted`` and, 0.3 s into their wait, a command;
    their answers, the command's, and how long the command took."""
    async with small.client() as client:
        queries = [
            asyncio.create_task(
                client.get(f"{summary_url(fresh('w'))}?min_position={wanted}&wait_ms={wait_ms}")
            )
            for _ in range(WAITERS)
        ]
        await asyncio.sleep(0.3)
        started = time.monotonic()
        command = await client.post(
            CREATE,
            json={"user_id": fresh("w"), "product_id": "p", "quantity": 1, "total_price": 1},
        )
        took = time.monotonic() - started
        return list(await asyncio.gather(*queries)), command, took


@pytest.mark.anyio
async def test_waiting_queries_hold_no_connection_and_all_time_out(
    small_service: SmallService,
) -> None:
    wanted = ahead(small_service.database_url, SUMMARIES_PROJECTION)
    started = time.monotonic()
    answers, command, took = await waiting_queries_and_a_command(small_service, wanted, 1500)
    assert (command.status_code, took < 0.8) == (202, True), (command.text, took)
    assert [answer.status_code for answer in answers] == [503] * WAITERS
    assert {answer.json()["wanted_position"] for answer in answers} == {str(wanted)}
    assert 1.4 <= time.monotonic() - started < 6.0


@pytest.mark.anyio
async def test_waiting_queries_hold_no_connection_and_all_see_the_move(
    small_service: SmallService,
) -> None:
    url = small_service.database_url
    wanted = ahead(url, SUMMARIES_PROJECTION)
    project_later(0.6, url, SUMMARIES_PROJECTION)
    answers, command, took = await waiting_queries_and_a_command(small_service, wanted, 8000)
    assert (command.status_code, took < 0.8) == (202, True), (command.text, took)
    assert [answer.status_code for answer in answers] == [200] * WAITERS
    assert {answer.headers["projection-position"] for answer in answers} == {str(wanted)}


def test_queries_need_a_token_once_tokens_are_configured(small_service: SmallService) -> None:
    with httpx.Client(base_url=small_service.service.url, timeout=10) as client:
        refused = client.get(summary_url("u-1"))
        answered = client.get(
            summary_url("u-1"), headers={"Authorization": f"Bearer {small_service.token}"}
        )
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="cqrs-demo"'
    assert answered.status_code == 200
