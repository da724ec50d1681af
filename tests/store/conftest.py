"""Fixtures of the store tests: a small pool over the session database."""

from collections.abc import AsyncIterator

import pytest

from cqrs_demo.store.pool import Database


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, min_size=1, max_size=4, timeout=5)
    await database.open(wait_seconds=10)
    yield database
    await database.close()
