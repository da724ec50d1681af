"""Fixtures of the store tests: stores on the session database's pool (``database``)."""

from datetime import timedelta

import pytest

from cqrs_demo.store.events import PostgresEventStore
from cqrs_demo.store.pool import Database

RETENTION = timedelta(hours=1)


@pytest.fixture(params=[64, 1], ids=["group-commit", "one-by-one"])
def store(database: Database, request: pytest.FixtureRequest) -> PostgresEventStore:
    """The store both ways the service runs it: group commit with two writers, and every
    append a statement of its own. Each command's outcome must be the same."""
    return PostgresEventStore(
        database, idempotency_retention=RETENTION, max_batch=request.param, max_in_flight=2
    )


@pytest.fixture
def one_writer_store(database: Database) -> PostgresEventStore:
    """One writer: what queues while it writes goes out as its next batch, all together."""
    return PostgresEventStore(
        database, idempotency_retention=RETENTION, max_batch=64, max_in_flight=1
    )
