"""A history checker: many clients append to a few streams at once; the log must be exact.

Clients mix three kinds of append: no expected version, the version they believe is
current (often stale under contention) and a deliberately stale one. Afterwards every
stream must hold versions 1..n without gap or duplicate, every 202 must be there exactly
once at the version it was acknowledged with, and no refused request may have left a trace.
"""

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from tests.audit import Write, assert_every_202_stored_once
from tests.support import Service

CREATE = "/api/commands/order/create"
CLIENTS = 16
STREAMS = 4
MAX_REQUESTS = 2_000
MAX_SECONDS = 8.0


@dataclass(frozen=True)
class Outcome:
    correlation_id: str
    stream: str
    mode: str
    status: int
    version: int | None
    event_id: str | None


async def client_loop(
    client: httpx.AsyncClient,
    streams: list[str],
    known: dict[str, int],
    outcomes: list[Outcome],
    deadline: float,
    rng: random.Random,
) -> None:
    while time.monotonic() < deadline and len(outcomes) < MAX_REQUESTS:
        stream = rng.choice(streams)
        mode = rng.choice(["none", "believed", "stale"])
        body: dict[str, object] = {
            "user_id": stream,
            "product_id": "p",
            "quantity": 1,
            "total_price": 1,
        }
        if mode == "believed":
            body["expected_version"] = known[stream]
        elif mode == "stale":
            body["expected_version"] = rng.randrange(0, known[stream]) if known[stream] else 7
        correlation_id = uuid.uuid4().hex
        response = await client.post(
            CREATE, json=body, headers={"X-Correlation-ID": correlation_id}
        )
        data = response.json()
        version = data.get("version") if response.status_code == 202 else None
        if response.status_code == 202:
            known[stream] = max(known[stream], data["version"])
        elif response.status_code == 409:
            known[stream] = max(known[stream], data["actual_version"])
        outcomes.append(
            Outcome(
                correlation_id,
                stream,
                mode,
                response.status_code,
                version,
                data["event_ids"][0] if response.status_code == 202 else None,
            )
        )


@pytest.mark.anyio
async def test_concurrent_appends_leave_an_exact_history(
    service: Service, database_url: str
) -> None:
    run = uuid.uuid4().hex[:8]
    streams = [f"history_{run}_{n}" for n in range(STREAMS)]
    known = dict.fromkeys(streams, 0)
    outcomes: list[Outcome] = []
    rng = random.Random(run)
    deadline = time.monotonic() + MAX_SECONDS
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=service.url, timeout=30, limits=limits) as client:
        await asyncio.gather(
            *(
                client_loop(client, streams, known, outcomes, deadline, random.Random(rng.random()))
                for _ in range(CLIENTS)
            )
        )

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT aggregate_id, version, event_id::text, metadata->>'correlation_id'"
            " FROM events WHERE aggregate_id = ANY(%s) ORDER BY aggregate_id, version",
            [streams],
        ).fetchall()

    statuses = Counter((o.mode, o.status) for o in outcomes)
    print(
        f"history: {len(outcomes)} requests, {len(rows)} events;",
        ", ".join(f"{mode} {status}: {n}" for (mode, status), n in sorted(statuses.items())),
    )
    assert {o.status for o in outcomes} <= {202, 409}, statuses
    for stream in streams:
        versions = [version for aggregate, version, _, _ in rows if aggregate == stream]
        assert versions == list(range(1, len(versions) + 1)), f"gap or duplicate in {stream}"
    assert_every_202_stored_once(
        [
            (o.correlation_id, Write(o.stream, o.version, o.event_id))
            for o in outcomes
            if o.status == 202 and o.version is not None
        ],
        [
            (str(correlation), Write(str(aggregate), int(version), str(event_id)))
            for aggregate, version, event_id, correlation in rows
        ],
    )
    assert statuses[("stale", 409)] > 0
    assert sum(n for (_, status), n in statuses.items() if status == 202) > 50
