"""Fixtures: one throwaway PostgreSQL per test session, started by the harness itself."""

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cqrs_demo.localdb import LocalPostgres, LocalPostgresError
from tests.support import IN_CI, Service, new_database, running_service

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


@pytest.fixture(scope="session")
def database_url(postgres: LocalPostgres) -> str:
    """A migrated ``cqrs_events`` database shared by the session (tests use own streams)."""
    return new_database(postgres, "cqrs_events")


@pytest.fixture
def fresh_database_url(postgres: LocalPostgres) -> str:
    """A migrated database of the test's own, for tests that count every row."""
    return new_database(postgres, f"cqrs_test_{next(_database_numbers)}_{os.getpid()}")


@pytest.fixture(scope="session")
def service(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``cqrs-demo serve`` with two workers over the session database."""
    with running_service(database_url, Path(tmp_path_factory.mktemp("service"))) as running:
        yield running


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
