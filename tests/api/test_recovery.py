"""Back at once after an outage: once PostgreSQL accepts connections again, the service
serves the next command, however long the outage lasted.

psycopg_pool retries a lost connection after 1, 2, 4, 8 s...; an outage longer than a few of
those steps left the service answering 503 for seconds after the database was back.
"""

import time
import uuid
from pathlib import Path

import httpx

from cqrs_demo.localdb import LocalPostgres
from tests.support import new_database, running_service

CREATE = "/api/commands/order/create"
OUTAGE_SECONDS = 12.0  # past the pool's 1 + 2 + 4 s of back-off: its next try was at 15 s
COMMANDS_AFTER = 50


def create(client: httpx.Client, user: str) -> int:
    body = {"user_id": user, "product_id": "p", "quantity": 1, "total_price": 1}
    return client.post(CREATE, json=body).status_code


def test_after_a_long_outage_commands_are_served_within_a_second(tmp_path: Path) -> None:
    with LocalPostgres() as postgres:
        url = new_database(postgres, "cqrs_events")
        user = f"back_{uuid.uuid4().hex[:10]}"
        with running_service(url, tmp_path) as service, service.client() as client:
            assert create(client, user) == 202
            postgres.stop(remove=False)
            stopped_at = time.monotonic()
            # Commands during the outage, so that both workers' pools lose and retry.
            during = []
            while time.monotonic() - stopped_at < OUTAGE_SECONDS:
                during.append(create(client, user))
                time.sleep(0.2)
            postgres.start()  # returns once the server accepts connections
            back_at = time.monotonic()
            answers = []
            for _ in range(COMMANDS_AFTER):
                answers.append((time.monotonic() - back_at, create(client, user)))
    assert set(during) == {503}, during
    first_served = next(seconds for seconds, status in answers if status == 202)
    print(f"first 202 {first_served:.2f} s after PostgreSQL was back; answers {answers[:5]}")
    # The issue asks for service within 1 s; the first command, waiting its 0.5 s for a
    # connection while the store is known to be unreachable, already gets one. (With the
    # pool's own back-off the first answers were 503s, for 0.5 to 2.5 s.)
    assert first_served < 1.0
    assert [status for _, status in answers] == [202] * COMMANDS_AFTER, answers
