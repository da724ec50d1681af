"""Idempotency-Key over HTTP, bearer tokens, and slow bodies."""

import asyncio
import hashlib
import socket
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from cqrs_demo.api.auth import new_token
from tests.races import hold_version_one, wait_for_blocked_appends
from tests.support import CQRS_DEMO, Service, raw_exchange, running_service

CREATE = "/api/commands/order/create"
CANCEL = "/api/commands/order/cancel"


def order(user: str, quantity: int = 2) -> dict[str, object]:
    return {"user_id": user, "product_id": "prod_456", "quantity": quantity, "total_price": 150.00}


def fresh(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def count_rows(database_url: str, user: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE aggregate_id = %s", [user]).fetchone()
    assert row is not None
    return int(row[0])


def test_a_retry_with_the_same_key_replays_the_original_answer(
    service: Service, database_url: str
) -> None:
    user, key = fresh("retry"), fresh("key")
    with service.client() as client:
        first = client.post(CREATE, json=order(user), headers={"Idempotency-Key": key})
        # the same command spelled differently is the same request
        again = client.post(
            CREATE,
            content=f'{{"total_price": 150.0, "quantity": 2, "user_id":'
            f' "{user}", "product_id": "prod_456"}}'.encode(),
            headers={"Idempotency-Key": key, "content-type": "application/json"},
        )
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert count_rows(database_url, user) == 1


def test_the_same_key_with_another_body_is_a_422(service: Service, database_url: str) -> None:
    user, key = fresh("reuse"), fresh("key")
    with service.client() as client:
        client.post(CREATE, json=order(user), headers={"Idempotency-Key": key})
        response = client.post(
            CREATE, json=order(user, quantity=3), headers={"Idempotency-Key": key}
        )
    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"Idempotency-Key '{key}' was already used for a different request"
    )
    assert count_rows(database_url, user) == 1


@pytest.mark.anyio
async def test_a_duplicate_while_the_first_is_in_flight_is_a_409(
    service: Service, database_url: str
) -> None:
    user, key = fresh("inflight"), fresh("key")
    holder = await hold_version_one(database_url, user)
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        first = asyncio.create_task(
            client.post(CREATE, json=order(user), headers={"Idempotency-Key": key})
        )
        await wait_for_blocked_appends(database_url, 1)
        duplicate = await client.post(CREATE, json=order(user), headers={"Idempotency-Key": key})
        await holder.rollback()
        await holder.close()
        original = await first
    assert duplicate.status_code == 409
    assert duplicate.headers["retry-after"] == "1"
    assert duplicate.json()["detail"] == (
        f"a request with Idempotency-Key '{key}' is still in progress"
    )
    assert original.status_code == 202
    assert count_rows(database_url, user) == 1


@pytest.mark.parametrize("key", [b"", b"a b", b"k" * 256, "ключ".encode()])
def test_a_malformed_idempotency_key_is_a_400(service: Service, key: bytes) -> None:
    with service.client() as client:
        response = client.post(
            CREATE, json=order(fresh("badkey")), headers={b"Idempotency-Key": key}
        )
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "Idempotency-Key must be 1 to 255 printable ASCII characters"
    )


def test_commands_need_a_valid_token_once_tokens_are_configured(
    database_url: str, tmp_path: Path
) -> None:
    token, digest = new_token()
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"# clients\norders-app sha256:{digest}\n")
    user = fresh("auth")
    with (
        running_service(database_url, tmp_path, CQRS_TOKENS_FILE=str(tokens_file)) as service,
        service.client() as client,
    ):
        refused = [
            client.post(CREATE, json=order(user)),
            client.post(CREATE, json=order(user), headers={"Authorization": "Bearer wrong"}),
            client.post(CREATE, json=order(user), headers={"Authorization": f"Basic {token}"}),
            client.post(CREATE, json=order(user), headers={"Authorization": token}),
        ]
        refused.append(client.post(CANCEL, json={"user_id": user, "order_id": "o"}))
        refused.append(client.get(f"/api/streams/{user}/events"))
        accepted = client.post(
            CREATE, json=order(user), headers={"Authorization": f"Bearer {token}"}
        )
        read = client.get(
            f"/api/streams/{user}/events", headers={"Authorization": f"Bearer {token}"}
        )
        probe = client.get("/healthz")
    for response in refused:
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="cqrs-demo"'
        assert response.json()["detail"] == (
            "a valid bearer token is required: Authorization: Bearer <token>"
        )
    assert accepted.status_code == 202
    assert read.status_code == 200
    assert probe.status_code == 200
    assert count_rows(database_url, user) == 1
    log = service.log()
    assert f"POST {CREATE} 401" in log
    assert "client=orders-app" in log
    assert token not in log
    assert "wrong" not in log


def test_a_bad_tokens_file_stops_start_up_naming_it(database_url: str, tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text("orders-app md5:abc\n")
    with running_service(
        database_url, tmp_path, wait_ready=False, CQRS_TOKENS_FILE=str(tokens_file)
    ) as service:
        assert service.process.wait(30) == 78
    assert service.log().strip() == (
        f"cqrs-demo: CQRS_TOKENS_FILE='{tokens_file}' is invalid: "
        "line 1 is not 'NAME sha256:<64 hex digits>'"
    )


def test_a_body_that_trickles_in_too_slowly_is_a_408(database_url: str, tmp_path: Path) -> None:
    with running_service(database_url, tmp_path, CQRS_BODY_TIMEOUT="1") as service:
        answer, waited = raw_exchange(
            service.url,
            b"POST " + CREATE.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"request body not received within 1 s" in answer
    # The answer comes when CQRS_BODY_TIMEOUT (1 s) runs out, not before (less a margin
    # for clock reads), and not only when the client gives up (10 s): 5 s leaves a loaded
    # 2-core machine 4 s to turn the timeout into an answer, a few milliseconds of work.
    assert 0.8 < waited < 5


def test_a_client_that_hangs_up_mid_body_is_a_400_in_the_log_not_a_500(
    database_url: str, tmp_path: Path
) -> None:
    with running_service(database_url, tmp_path) as service:
        address = urlsplit(service.url)
        with socket.create_connection((address.hostname, address.port)) as conn:
            conn.sendall(
                b"POST " + CREATE.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
        service.wait_for_log(f"POST {CREATE} 400")
    log = service.log()  # complete: the service has stopped
    assert f"POST {CREATE} 500" not in log
    assert "Traceback" not in log


def test_the_token_command_prints_a_token_and_its_hash_line() -> None:
    result = subprocess.run(
        [CQRS_DEMO, "token", "orders-app"], capture_output=True, text=True, check=True
    )
    token_line, file_line = result.stdout.splitlines()
    token = token_line.rsplit(" ", 1)[1]
    assert file_line.endswith(f"orders-app sha256:{hashlib.sha256(token.encode()).hexdigest()}")
    bad = subprocess.run(
        [CQRS_DEMO, "token", "bad name"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2
    assert "NAME must be" in bad.stderr


def test_the_database_password_never_reaches_a_log_or_an_answer(
    database_url: str, tmp_path: Path
) -> None:
    secret = "hunter2-" + uuid.uuid4().hex
    password_file = tmp_path / "db-password"
    password_file.write_text(secret + "\n")
    password_file.chmod(0o600)
    unreachable = "postgresql://cqrs_app@127.0.0.1:1/cqrs_events"
    with running_service(
        unreachable,
        tmp_path,
        wait_ready=False,
        CQRS_POOL_TIMEOUT="1",
        CQRS_DATABASE_PASSWORD_FILE=str(password_file),
    ) as failing:
        assert failing.process.wait(60) == 1
    with (
        running_service(
            database_url,
            tmp_path,
            CQRS_LOG_LEVEL="debug",
            CQRS_DATABASE_PASSWORD_FILE=str(password_file),
        ) as service,
        service.client() as client,
    ):
        answers = [
            client.post(CREATE, json=order(fresh("secret"))).text,
            client.post(CREATE, content=b"{").text,
            client.get("/readyz").text,
        ]
        cmdlines = [
            Path(f"/proc/{pid}/cmdline").read_bytes()
            for pid in [service.process.pid, *service.children()]
        ]
    assert "cannot connect to the database cqrs_app@127.0.0.1:1/cqrs_events" in failing.log()
    for text in [failing.log(), service.log(), *answers]:
        assert secret not in text
    for cmdline in cmdlines:
        assert secret.encode() not in cmdline
