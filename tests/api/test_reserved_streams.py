"""The reserved verification streams (``cqrs-verify:...``) over HTTP: a client's command
there is refused, naming the field and the prefix; only a request presenting a token of
``CQRS_VERIFY_TOKEN_FILE`` (the deployment's verification) writes one."""

import uuid
from pathlib import Path

import psycopg

from cqrs_demo.api.auth import new_token
from tests.support import Service, running_service

CREATE = "/api/commands/order/create"
CANCEL = "/api/commands/order/cancel"
REFUSAL = (
    "user_id must not start with 'cqrs-verify:': the prefix is reserved for the"
    " deployment's verification (docs/api.md, Reserved streams)"
)


def reserved_user() -> str:
    return f"cqrs-verify:test-{uuid.uuid4().hex[:12]}"


def order(user: str) -> dict[str, object]:
    return {"user_id": user, "product_id": "prod_456", "quantity": 2, "total_price": 150.00}


def rows_of(database_url: str, user: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE aggregate_id = %s", [user]).fetchone()
    assert row is not None
    return int(row[0])


def assert_refused_naming_the_prefix(status: int, body: dict[str, object]) -> None:
    assert status == 400, body
    assert body["type"] == "urn:cqrs-demo:invalid-command"
    assert body["errors"] == [{"field": "user_id", "message": REFUSAL}]


def test_a_client_command_to_a_reserved_stream_is_a_400_naming_the_field_and_the_prefix(
    service: Service, database_url: str
) -> None:
    user = reserved_user()
    with service.client() as client:
        created = client.post(CREATE, json=order(user))
        cancelled = client.post(CANCEL, json={"user_id": user, "order_id": "o"})
        # A token is no key to it when the service has no verification token.
        presented = client.post(CREATE, json=order(user), headers={"Authorization": "Bearer x"})
        # Only the prefix itself is reserved: the same letters elsewhere are a plain user.
        elsewhere = client.post(CREATE, json=order(f"x{user}"))
    for answer in (created, cancelled, presented):
        assert_refused_naming_the_prefix(answer.status_code, answer.json())
    assert elsewhere.status_code == 202, elsewhere.text
    assert rows_of(database_url, user) == 0


def test_only_the_verification_token_writes_a_reserved_stream(
    database_url: str, tmp_path: Path
) -> None:
    verify_token, verify_digest = new_token()
    client_token, client_digest = new_token()
    verify_file = tmp_path / "verify-token-hash"
    verify_file.write_text(f"verify sha256:{verify_digest}\n")
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"orders-app sha256:{client_digest}\nverify sha256:{verify_digest}\n")
    user = reserved_user()
    verify_setting = str(verify_file)
    with (
        running_service(database_url, tmp_path, CQRS_VERIFY_TOKEN_FILE=verify_setting) as service,
        service.client() as client,
    ):
        without = client.post(CREATE, json=order(user))
        wrong = client.post(CREATE, json=order(user), headers={"Authorization": "Bearer wrong"})
        verified = client.post(
            CREATE, json=order(user), headers={"Authorization": f"Bearer {verify_token}"}
        )
    with (
        running_service(
            database_url,
            tmp_path,
            CQRS_TOKENS_FILE=str(tokens_file),
            CQRS_VERIFY_TOKEN_FILE=verify_setting,
        ) as service,
        service.client() as client,
    ):
        by_a_client = client.post(
            CREATE, json=order(user), headers={"Authorization": f"Bearer {client_token}"}
        )
        verified_again = client.post(
            CREATE, json=order(user), headers={"Authorization": f"Bearer {verify_token}"}
        )
    for answer in (without, wrong, by_a_client):
        assert_refused_naming_the_prefix(answer.status_code, answer.json())
    assert (verified.status_code, verified_again.status_code) == (202, 202), verified.text
    assert verified_again.json()["version"] == 2
    assert rows_of(database_url, user) == 2


def test_an_unreadable_verify_token_file_stops_the_service_naming_it(
    database_url: str, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-file"
    with running_service(
        database_url, tmp_path, wait_ready=False, CQRS_VERIFY_TOKEN_FILE=str(missing)
    ) as service:
        assert service.process.wait(30) == 78
    assert service.log().strip() == (
        f"cqrs-demo: CQRS_VERIFY_TOKEN_FILE='{missing}' is invalid:"
        " cannot be read: No such file or directory"
    )
