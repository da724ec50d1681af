"""The published OpenAPI document, and schemathesis fuzzing the live server against it."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import Service, require

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


def test_the_document_is_openapi_3_1_and_covers_every_route(service: Service) -> None:
    with service.client() as client:
        document = client.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {"/api/commands/order/create", "/healthz", "/readyz"}
    create = document["paths"]["/api/commands/order/create"]["post"]
    assert set(create["responses"]) == {
        "202",
        "400",
        "401",
        "405",
        "408",
        "409",
        "413",
        "415",
        "422",
        "500",
        "503",
    }
    schema = document["components"]["schemas"]["CreateOrder"]
    assert schema["required"] == ["user_id", "product_id", "quantity", "total_price"]
    assert schema["additionalProperties"] is False


def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_document(
    service: Service, tmp_path: Path
) -> None:
    require(Path(SCHEMATHESIS).exists(), "schemathesis in the virtualenv")
    logged_before = len(service.log())
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
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
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
