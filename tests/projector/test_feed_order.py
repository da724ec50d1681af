"""The gap: a transaction that takes its id first and commits last is applied, in order."""

import json
import time
from pathlib import Path

import psycopg

from cqrs_demo.domain.ids import uuid7
from tests.projector.support import audit, checkpoints, running_projector, wait_until_caught_up

INSERT = (
    "INSERT INTO events (aggregate_id, event_type, payload, version, event_id)"
    " VALUES (%s, %s, %s, %s, %s)"
)


def payload(event_type: str, order: str, user: str) -> str:
    fields: dict[str, object] = {"event_type": event_type, "order_id": order, "user_id": user}
    if event_type == "OrderCreated":
        fields |= {"product_id": "p", "quantity": 1, "total_price": 9.99}
    else:
        fields |= {"reason": None}
    return json.dumps(fields)


def test_an_order_placed_by_the_transaction_that_commits_last_is_applied_before_its_cancel(
    fresh_database_url: str, tmp_path: Path
) -> None:
    # The place takes its transaction id first and commits last; the cancel commits first.
    # In commit order (or id order across a gap) the cancel would come first and stop the
    # projections ("never placed"); in feed order the place comes first.
    user, order = "gap-user", str(uuid7())
    with running_projector(fresh_database_url, tmp_path) as projector:
        projector.wait_until_holding()
        early = psycopg.connect(fresh_database_url)
        early.execute("SELECT pg_current_xact_id()")
        with psycopg.connect(fresh_database_url, autocommit=True) as later:
            later.execute(
                INSERT, [user, "OrderCancelled", payload("OrderCancelled", order, user), 2, uuid7()]
            )
        early.execute(
            INSERT, [user, "OrderCreated", payload("OrderCreated", order, user), 1, uuid7()]
        )
        time.sleep(2.5)  # the projector polls twice meanwhile: it must wait for the early one
        assert all(applied == 0 for _, applied, _, _ in checkpoints(fresh_database_url).values())
        early.commit()
        early.close()
        wait_until_caught_up(fresh_database_url, timeout=5)
    assert audit(fresh_database_url) == 1
    with psycopg.connect(fresh_database_url) as conn:
        row = conn.execute("SELECT status FROM orders WHERE order_id = %s", [order]).fetchone()
    assert row == ("cancelled",)
    assert {state for *_, state in checkpoints(fresh_database_url).values()} == {"running"}
