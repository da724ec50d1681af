"""The published OpenAPI document, and schemathesis fuzzing the live server against it."""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from starlette.routing import Route

from cqrs_demo.api.app import build_app
from cqrs_demo.api.auth import BearerTokens
from cqrs_demo.api.body import BodyRules
from cqrs_demo.ports import ORDERS_PROJECTION, SUMMARIES_PROJECTION
from cqrs_demo.store.events import PostgresEventStore
from cqrs_demo.store.order_queries import PostgresOrderQueries
from cqrs_demo.store.pool import Database
from tests.support import Service, require

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
# What answers a request that breaks the schema (schemathesis's negative_data_rejection).
REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428"]
REFUSALS += ["429", "431", "5xx"]


def test_the_document_is_openapi_3_1_and_covers_every_route(service: Service) -> None:
    with service.client() as client:
        document = client.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    database = Database("", min_size=1, max_size=1, timeout=1)
    app = build_app(
        store=PostgresEventStore(database, idempotency_retention=timedelta(hours=1)),
        check_ready=_never_called,
        tokens=BearerTokens(()),
        body=BodyRules(limit=1, seconds=1),
        read_models=PostgresOrderQueries(database),
    )
    served = {
        (re.sub(r":\w+}", "}", route.path), method.lower())
        for route in app.app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert served == documented
    assert ("/api/commands/order/cancel", "post") in served
    assert ("/api/streams/{aggregate_id}/events", "get") in served
    assert ("/api/queries/users/{user_id}/orders", "get") in served


def test_every_read_with_query_parameters_documents_the_414_of_a_long_url(
    service: Service,
) -> None:
    """The HTTP edge answers 414 to a URL over its limit before any route: every read that
    takes query parameters (where a client, or schemathesis, can make the URL long) says so."""
    with service.client() as client:
        document = client.get("/openapi.json").json()
        reads = [
            (path, item["get"])
            for path, item in document["paths"].items()
            if any(p["in"] == "query" for p in item.get("get", {}).get("parameters", []))
        ]
        assert len(reads) >= 5, reads
        for path, operation in reads:
            assert "414" in operation["responses"], path
            response = client.get(re.sub(r"{\w+}", "x", path), params={"p": "1" * 9000})
            assert response.status_code == 414, (path, response.text)
            assert response.json()["detail"].startswith("the URL is longer than"), path


def test_each_command_documents_its_own_answers_and_body(service: Service) -> None:
    with service.client() as client:
        document = client.get("/openapi.json").json()
    create = document["paths"]["/api/commands/order/create"]["post"]
    every_command = {"202", "400", "401", "405", "408", "409", "413", "415", "422", "500", "503"}
    assert set(create["responses"]) == every_command
    cancel = document["paths"]["/api/commands/order/cancel"]["post"]
    assert set(cancel["responses"]) == every_command | {"404"}
    assert "already cancelled" in cancel["responses"]["409"]["description"]
    schemas = document["components"]["schemas"]
    assert schemas["CreateOrder"]["required"] == [
        "user_id",
        "product_id",
        "quantity",
        "total_price",
    ]
    assert schemas["CancelOrder"]["required"] == ["user_id", "order_id"]
    assert set(schemas["CancelOrder"]["properties"]) == {
        "user_id",
        "order_id",
        "reason",
        "timestamp",
        "expected_version",
    }
    assert all(
        schema["additionalProperties"] is False
        for schema in (schemas["CreateOrder"], schemas["CancelOrder"])
    )


async def _never_called() -> int:
    raise AssertionError("the route listing never checks readiness")


@pytest.fixture
def projections_at_the_end(database_url: str) -> Iterator[None]:
    """Every projection's checkpoint at the last position there can be, and afterwards as
    before: a query's min_position is then always reached, so a generated one does not make
    it wait and answer 503 (projection-behind), which tests/api/test_queries.py tests."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        saved = conn.execute("SELECT * FROM projection_checkpoints").fetchall()
        for projection in (ORDERS_PROJECTION, SUMMARIES_PROJECTION):
            conn.execute(
                "INSERT INTO projection_checkpoints (projection, transaction_id, event_number)"
                " VALUES (%s, %s::xid8, %s) ON CONFLICT (projection) DO UPDATE"
                " SET transaction_id = excluded.transaction_id,"
                " event_number = excluded.event_number",
                [projection, str(2**64 - 1), 2**63 - 1],
            )
    yield
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute("DELETE FROM projection_checkpoints")
        for row in saved:
            placeholders = ", ".join(["%s"] * len(row))
            conn.execute(f"INSERT INTO projection_checkpoints VALUES ({placeholders})", row)


@pytest.mark.usefixtures("projections_at_the_end")
def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_document(
    service: Service, tmp_path: Path
) -> None:
    require(Path(SCHEMATHESIS).exists(), "schemathesis in the virtualenv")
    logged_before = len(service.log())
    # A long poll of the feed holds its answer up to wait seconds (30 at most), past the
    # request timeout: the fuzzer reads the feed without waiting (test_feed.py waits).
    # A request that breaks the schema must be refused with a 4xx; beside schemathesis's own
    # list, the HTTP edge's refusals of what is over its limits before any route: 413 (a
    # body), 414 (a URL: repeated query parameters make it long) and 431 (the headers).
    (tmp_path / "schemathesis.toml").write_text(
        '[[operations]]\ninclude-operation-id = "readFeed"\nparameters = { "query.wait" = 0 }\n'
        "[checks.negative_data_rejection]\n"
        f"expected-statuses = {REFUSALS}\n"
    )
    # positive_data_acceptance is left out: three rules cannot be said in JSON Schema (If-Match
    # must agree with expected_version; at most 6 decimal places; a reused Idempotency-Key),
    # so schema-valid requests can rightly get 400 or 422. Those rules have their own tests.
    result = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"{service.url}/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "150",
            "--max-time",
            "40",
            "--workers",
            "1",
            "--request-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    print(result.stdout[-3000:])
    failures = result.stdout[result.stdout.find("FAILURES") :]  # the cases, then the summary
    assert result.returncode == 0, failures[:8000] + result.stderr[-2000:]
    assert "generated" in result.stdout
    fuzz_log = service.log()[logged_before:]
    # The fuzzing's own lines are there to search (at least one per case it generated):
    assert re.search(r"cqrs_demo.request: \S+ \S+ [1-4]\d\d ", fuzz_log), fuzz_log[-3000:]
    assert not re.search(r"cqrs_demo.request: \S+ \S+ 5\d\d ", fuzz_log)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
def test_probes_and_the_document_answer_get_only(service: Service, path: str) -> None:
    with service.client() as client:
        response = client.post(path)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}
