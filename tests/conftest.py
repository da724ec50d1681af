"""Fixtures: one throwaway PostgreSQL per test session, started by the harness itself."""

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cqrs_demo.localdb import LocalPostgres, LocalPostgresError
from cqrs_demo.store.pool import Database
from tests.support import (
    IN_CI,
    Replicated,
    Service,
    events_table_state,
    new_database,
    replicated,
    running_service,
)

# Helpers with assertions, imported by tests of more than one folder (the deployment tests
# audit the projector as its own tests do): registered here, before any test imports them.
pytest.register_assert_rewrite("tests.projector.support")

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """A private PostgreSQL server for the whole session, removed at the end."""
    try:
        server = LocalPostgres()
        server.start()
    except LocalPostgresError as error:
        if IN_CI:
            pytest.fail(f"CI=true and the throwaway PostgreSQL did not start: {error}")
        pytest.skip(f"needs PostgreSQL server binaries: {error}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def primary_and_standby() -> Iterator[Replicated]:
    """A primary and a hot standby streaming from it (``replicated``) for the module."""
    try:
        with replicated() as servers:
            yield servers
    except LocalPostgresError as error:
        if IN_CI:
            pytest.fail(f"CI=true and the primary and standby did not start: {error}")
        pytest.skip(f"needs PostgreSQL server binaries with pg_basebackup: {error}")


@pytest.fixture(scope="session")
def database_url(postgres: LocalPostgres) -> str:
    """A migrated ``cqrs_events`` database shared by the session (tests use own streams)."""
    return new_database(postgres, "cqrs_events")


@pytest.fixture
def fresh_database_url(postgres: LocalPostgres) -> str:
    """A migrated database of the test's own, for tests that count every row."""
    return new_database(postgres, f"cqrs_test_{next(_database_numbers)}_{os.getpid()}")


# Every API test runs against both ways of writing: group commit (the default) and one
# statement per command. Each command's outcome must be the same.
WRITE_MODES = {"group-commit": "64", "one-by-one": "1"}


@pytest.fixture(scope="session", params=list(WRITE_MODES))
def service(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Service]:
    """``cqrs-demo serve`` with two workers over the session database."""
    with running_service(
        database_url,
        Path(tmp_path_factory.mktemp("service")),
        CQRS_GROUP_COMMIT_MAX_BATCH=WRITE_MODES[request.param],
    ) as running:
        yield running


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A small pool over the session database, for tests of the store and the handlers."""
    database = Database(database_url, min_size=1, max_size=4, timeout=5)
    await database.open(wait_seconds=10)
    yield database
    await database.close()


@pytest.fixture
def nothing_written(database_url: str) -> Iterator[None]:
    """Afterwards, checks that the events table is exactly as before the test. (Tests run
    one at a time, and the service writes only when asked: nothing else changes it.)"""
    before = events_table_state(database_url)
    yield
    assert events_table_state(database_url) == before, "a refused request wrote an event"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
