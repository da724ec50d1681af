"""The deployment's verification streams (``cqrs-verify:...``) are passed over by the
projector: the checkpoints move past their events, and no read model shows them."""

from pathlib import Path

import psycopg
import pytest

from cqrs_demo.domain.ids import uuid7
from cqrs_demo.domain.projections import VERIFICATION_PREFIX
from tests.projector.support import (
    Writers,
    audit,
    checkpoints,
    running_projector,
    wait_until_caught_up,
)
from tests.projector.test_feed_order import INSERT, payload

pytestmark = pytest.mark.anyio


async def test_verification_events_move_the_checkpoints_and_change_no_read_model(
    fresh_database_url: str, tmp_path: Path
) -> None:
    verify = f"{VERIFICATION_PREFIX}deb13-20261130T043512123456"
    order = str(uuid7())
    with running_projector(fresh_database_url, tmp_path) as projector:
        projector.wait_until_holding()
        async with Writers(fresh_database_url) as writers:
            await writers.write(40)
        # Placed twice: on a business stream that would stop both projections.
        with psycopg.connect(fresh_database_url, autocommit=True) as conn:
            for version in (1, 2):
                created = payload("OrderCreated", order, verify)
                conn.execute(INSERT, [verify, "OrderCreated", created, version, uuid7()])
        async with Writers(fresh_database_url) as writers:
            await writers.write(10)
        wait_until_caught_up(fresh_database_url)
    assert {state for *_, state in checkpoints(fresh_database_url).values()} == {"running"}
    assert audit(fresh_database_url) > 0
    with psycopg.connect(fresh_database_url) as conn:
        shown = conn.execute(
            "SELECT (SELECT count(*) FROM orders WHERE starts_with(user_id, %(prefix)s))"
            " + (SELECT count(*) FROM user_order_summaries WHERE starts_with(user_id, %(prefix)s))"
            " + (SELECT count(*) FROM user_order_summary_open_orders WHERE order_id = %(order)s)",
            {"prefix": VERIFICATION_PREFIX, "order": order},
        ).fetchone()
    assert shown == (0,)
