"""An event a projection cannot apply stops that projection, shown in the log and in
``projections status``; ``projections skip`` records the skip and the projection goes on."""

import json
import os
import pwd
import subprocess
from pathlib import Path
from uuid import UUID

import psycopg
import pytest

from cqrs_demo.domain.ids import uuid7
from tests.projector.support import (
    Writers,
    checkpoints,
    running_projector,
    wait_until_caught_up,
)
from tests.support import CQRS_DEMO, wait_for_match

pytestmark = pytest.mark.anyio


def cli(database_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CQRS_DEMO, "projections", *arguments],
        env={**os.environ, "CQRS_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=30,
    )


def insert_event(database_url: str, event_type: str, fields: dict[str, object]) -> UUID:
    """An event written straight into the table, bypassing the domain's checks."""
    event_id = uuid7()
    user = str(fields["user_id"])
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO events (aggregate_id, event_type, payload, version, event_id)"
            " SELECT %s, %s, %s, coalesce(max(version), 0) + 1, %s FROM events"
            " WHERE aggregate_id = %s",
            [user, event_type, json.dumps({"event_type": event_type, **fields}), event_id, user],
        )
    return event_id


def wait_for_state(database_url: str, projection: str, state: str) -> None:
    wait_for_match(lambda: str(checkpoints(database_url).get(projection)), rf"'{state}'\)")


async def test_a_malformed_event_stops_each_projection_until_each_is_skipped(
    fresh_database_url: str, tmp_path: Path
) -> None:
    async with Writers(fresh_database_url) as writers:
        await writers.write(50)
        bad = insert_event(
            fresh_database_url,
            "OrderCreated",
            {
                "order_id": "o-bad",
                "user_id": "u-bad",
                "product_id": "p",
                "quantity": "two",
                "total_price": 5,
            },
        )
        await writers.write(50)
        with running_projector(fresh_database_url, tmp_path) as projector:
            for name in ("orders", "user_order_summaries"):
                projector.wait_for_log(
                    rf"ERROR cqrs_demo.projector: projection {name} stopped at event {bad}"
                    r" \(OrderCreated\): .*payload field 'quantity' is not an integer"
                )
                wait_for_state(fresh_database_url, name, "stopped")
            status = cli(fresh_database_url, "status")
            assert status.returncode == 1
            assert status.stdout.count(f"stopped at event {bad} (OrderCreated)") == 2
            assert f"cqrs-demo projections skip orders --event {bad}" in status.stdout
            applied = checkpoints(fresh_database_url)
            assert {value[1] for value in applied.values()} == {50}  # all before it, none after
        with running_projector(fresh_database_url, tmp_path) as projector:
            # a restart tries the event again (a new release may read it), and stops again
            for name in ("orders", "user_order_summaries"):
                projector.wait_for_log(
                    rf"WARNING cqrs_demo.projector: projection {name} was stopped at event"
                    rf" {bad} \(OrderCreated\): .*; trying that event again"
                )
                projector.wait_for_log(
                    rf"ERROR cqrs_demo.projector: projection {name} stopped at event {bad}"
                )
            assert checkpoints(fresh_database_url) == applied

            other = cli(
                fresh_database_url, "skip", "orders", "--event", str(uuid7()), "--reason", "x"
            )
            assert other.returncode == 1
            assert "projection 'orders' is not stopped at event" in other.stderr
            assert checkpoints(fresh_database_url) == applied  # nothing changed

            skipped = cli(
                fresh_database_url,
                "skip",
                "orders",
                "--event",
                str(bad),
                "--reason",
                "quantity written as a word by a bad import",
            )
            assert skipped.returncode == 0, skipped.stderr
            assert f"skipped event {bad}" in skipped.stdout
            await writers.write(20)
            wait_for_match(lambda: str(checkpoints(fresh_database_url)["orders"][1]), "^120$")
            # the other one is still stopped, where it was
            assert checkpoints(fresh_database_url)["user_order_summaries"][1:] == (
                50,
                121,
                "stopped",
            )

            again = cli(
                fresh_database_url, "skip", "orders", "--event", str(bad), "--reason", "twice"
            )
            assert again.returncode == 1
            assert f"projection 'orders' is not stopped at event {bad}" in again.stderr

            assert (
                cli(
                    fresh_database_url,
                    "skip",
                    "user_order_summaries",
                    "--event",
                    str(bad),
                    "--reason",
                    "the same bad import",
                ).returncode
                == 0
            )
            wait_until_caught_up(fresh_database_url, skipped=1)
            assert cli(fresh_database_url, "status").returncode == 0
    with psycopg.connect(fresh_database_url) as conn:
        skips = conn.execute(
            "SELECT projection, event_type, reason, skipped_by FROM projection_skips"
            " WHERE event_id = %s ORDER BY projection",
            [bad],
        ).fetchall()
    me = pwd.getpwuid(os.getuid()).pw_name
    assert [(s[0], s[1], s[3]) for s in skips] == [
        ("orders", "OrderCreated", me),
        ("user_order_summaries", "OrderCreated", me),
    ]
    assert skips[0][2] == "quantity written as a word by a bad import"


async def test_an_event_only_one_projection_refuses_stops_that_one_and_the_other_goes_on(
    fresh_database_url: str, tmp_path: Path
) -> None:
    # An order placed again after its cancel: orders knows it (placed before) and stops;
    # the summaries keep only open orders, count it, and go on.
    async with Writers(fresh_database_url) as writers:
        fields = {
            "order_id": "o-twice",
            "user_id": "u-twice",
            "product_id": "p",
            "quantity": 1,
            "total_price": 5,
        }
        insert_event(fresh_database_url, "OrderCreated", fields)
        insert_event(
            fresh_database_url,
            "OrderCancelled",
            {"order_id": "o-twice", "user_id": "u-twice", "reason": None},
        )
        again = insert_event(fresh_database_url, "OrderCreated", fields)
        with running_projector(fresh_database_url, tmp_path) as projector:
            projector.wait_for_log(
                rf"projection orders stopped at event {again} \(OrderCreated\):"
                r" .*places order o-twice, which was placed before"
            )
            await writers.write(40)
            wait_for_match(
                lambda: str(checkpoints(fresh_database_url)["user_order_summaries"][1]), "^43$"
            )
            assert checkpoints(fresh_database_url)["orders"][1:] == (2, 43, "stopped")
            assert "projection user_order_summaries stopped" not in projector.log()


async def test_an_order_placed_again_in_a_later_batch_stops_both_projections_at_that_event(
    fresh_database_url: str, tmp_path: Path
) -> None:
    # A new order's rows are not loaded (they are new by construction); when one is there
    # after all, the batch is applied again with its rows loaded and each projection stops
    # at the event, as when the first placement is in the same batch (the test above).
    fields = {
        "order_id": "o-again",
        "user_id": "u-again",
        "product_id": "p",
        "quantity": 1,
        "total_price": 5,
    }
    insert_event(fresh_database_url, "OrderCreated", fields)
    with running_projector(fresh_database_url, tmp_path) as projector:
        wait_until_caught_up(fresh_database_url)
        again = insert_event(fresh_database_url, "OrderCreated", fields)
        for name, reason in (
            ("orders", "which was placed before"),
            ("user_order_summaries", "which is open already"),
        ):
            projector.wait_for_log(
                rf"projection {name} stopped at event {again} \(OrderCreated\):"
                rf" .*places order o-again, {reason}"
            )
            assert checkpoints(fresh_database_url)[name][1:] == (1, 2, "stopped")
        log = projector.log()
    for name in ("orders", "user_order_summaries"):
        assert (
            f"projection {name}: a row inserted as new was there already (database error"
            " UniqueViolation (SQLSTATE 23505)); applying the batch again, every row loaded"
        ) in log
    with psycopg.connect(fresh_database_url) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1,)
        summary = conn.execute(
            "SELECT orders_placed, open_orders FROM user_order_summaries"
        ).fetchone()
        assert summary == (1, 1)
